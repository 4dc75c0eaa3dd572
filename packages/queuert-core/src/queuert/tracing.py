"""Trace contexts: what a tracing observability adapter stores with chains, jobs and blocker links.

Every job row has two opaque text fields, ``chain_trace_context`` (the same for every job of a
chain) and ``trace_context`` (the job's own), and every blocker link one ``trace_context``. The core
never reads them: when the observability adapter given to the client also implements
:class:`TraceContexts`, the client asks it for the values to store as it plans new jobs, and hands
them back in the events (:class:`~queuert.observability.JobInfo`, ``ChainCreated``, ``JobCreated``,
``ChainClosed``...) so that the adapter can continue a trace in another process, days later. An
adapter that does not implement it gets nothing stored (the fields stay ``None``).

A context handed out belongs to work that may still roll back. The adapter learns the outcome from
the events: the events of committed work are emitted after the commit as usual, and for work that
rolled back (or failed before its transaction could commit) the client calls :meth:`abandon` with
every context it was handed for it. ``queuert-otel`` uses the W3C ``traceparent`` form; another
adapter may store anything that fits in a text column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from queuert.observability import ChainCreated, ChainDeduplicated, Event, JobCreated, JobInfo

__all__ = ["AttemptScopes", "TraceContexts", "handed_out"]


@runtime_checkable
class TraceContexts(Protocol):
    """Optional part of an observability adapter: the trace contexts stored with new work.

    Every method is called on the event loop, synchronously, while the caller's transaction is open:
    it must be quick, must not block and must not raise (an exception is logged and the value taken
    as ``None``).
    """

    def start_chain(self, chain_type_name: str) -> str | None:
        """A new chain of ``chain_type_name`` is about to be created (in the caller's current
        context, e.g. inside its HTTP request span): the chain's trace context to store."""
        ...

    def start_job(
        self,
        type_name: str,
        chain_type_name: str,
        chain_trace_context: str | None,
        origin_trace_context: str | None,
    ) -> str | None:
        """A job is about to be created in the chain whose context is ``chain_trace_context``: the
        job's trace context to store. ``origin_trace_context`` is the context of the job it
        continues (``None`` for a chain's first job)."""
        ...

    def start_blockers(
        self, trace_context: str | None, blocker_chain_ids: Sequence[str]
    ) -> list[str | None]:
        """The job whose context is ``trace_context`` is about to wait for these chains (slot
        order): the trace context to store on each link."""
        ...

    def abandon(self, trace_contexts: Sequence[str]) -> None:
        """These contexts were handed out for work that will never commit (rolled back, or failed
        before its transaction could): no event will mention them."""
        ...


@runtime_checkable
class AttemptScopes(Protocol):
    """Optional part of an observability adapter: a scope the handler of an attempt runs in.

    The worker enters it inside the handler's own task, after the attempt's ``job_attempt_started``
    event, and leaves it when the handler and its completion are done; a tracing adapter makes the
    attempt's span the current one there, so the handler's own spans and the chains it starts are
    its children. Must be quick and must not raise (an exception is logged and the handler runs
    without it).
    """

    def attempt_scope(self, job: JobInfo) -> AbstractContextManager[object] | None: ...


def handed_out(events: Iterable[Event]) -> list[str]:
    """The contexts handed out at creation that ``events`` report (to abandon them when the events
    are dropped with a rolled-back transaction)."""
    out: list[str] = []
    for event in events:
        if isinstance(event, JobCreated):
            if event.job.trace_context is not None:
                out.append(event.job.trace_context)
            out.extend(b.trace_context for b in event.blockers if b.trace_context is not None)
        elif isinstance(event, ChainCreated):
            if event.trace_context is not None:
                out.append(event.trace_context)
        elif isinstance(event, ChainDeduplicated):
            out.extend(c for c in (event.trace_context, event.job_trace_context) if c is not None)
    return out
