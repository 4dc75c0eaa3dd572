"""Traces: spans for chains, jobs, blocker links and attempts, continued across processes through the
trace contexts queuert stores with each chain, job and blocker link.

The PRODUCER spans of new work are started when the client plans it (their contexts are written into
the rows) and ended when its events arrive, after the commit. Work that rolls back is abandoned: its
spans end with status ERROR ("rolled back"), so nothing else about it is exported. Attempt spans start
when an attempt starts and end when it completes, fails or loses its job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)
from queuert.observability import (
    AttemptCompleted,
    AttemptFailed,
    AttemptStarted,
    ChainClosed,
    ChainCreated,
    ChainDeduplicated,
    Event,
    JobCompleted,
    JobCreated,
    JobInfo,
    LeaseLost,
)

from queuert_otel import _attributes as a

__all__ = ["MAX_PENDING", "Traces", "parse", "span_context", "traceparent"]

MAX_PENDING = 10_000
"""Started spans kept waiting for their commit or their attempt's end; past this, the oldest is
ended as an error (work whose outcome queuert never reported, e.g. a continuation planned by a
handler that then failed)."""


def traceparent(span: Span) -> str | None:
    """The W3C ``traceparent`` of ``span`` (``None`` for a span that is not sampled or invalid)."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def span_context(value: str | None) -> SpanContext | None:
    """The remote span context of the ``traceparent`` ``value``; ``None`` if it is missing or not
    one (another tool's value: ignored). Version 00 only, the one this package writes."""
    if not value or len(value) != 55 or value[:3] != "00-" or value[35] != "-" or value[52] != "-":
        return None
    try:
        trace_id = int(value[3:35], 16)
        span_id = int(value[36:52], 16)
        flags = int(value[53:55], 16)
    except ValueError:
        return None
    if trace_id == 0 or span_id == 0 or not 0 <= flags <= 0xFF:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=_FLAGS[flags])


_FLAGS = tuple(TraceFlags(flags) for flags in range(256))
"""Every ``TraceFlags`` value, made once (a parsed context shares them)."""


def parse(value: str | None) -> Context | None:
    """The context whose parent is the remote span of the ``traceparent`` ``value`` (``None`` as
    :func:`span_context`)."""
    context = span_context(value)
    if context is None:
        return None
    return trace.set_span_in_context(NonRecordingSpan(context), _ROOT)


_ROOT = Context()
"""The context a stored span context is parsed into: nothing else (the span continued is the one
stored, whatever task the event arrives in)."""


def _link(value: str | None) -> list[Link]:
    context = span_context(value)
    return [] if context is None else [Link(context)]


class Traces:
    """The tracing part of :class:`~queuert_otel.OtelObservability`."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._pending: dict[str, Span] = {}
        """Started PRODUCER spans by the context handed out, until their commit or abandon."""
        self._attempts: dict[tuple[str, int], Span] = {}
        self._chains: dict[str, Span] = {}
        """The running attempt span of each chain (a chain runs one job at a time)."""
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            ChainCreated: self._chain_created,
            ChainDeduplicated: self._chain_deduplicated,
            JobCreated: self._job_created,
            AttemptStarted: self._attempt_started,
            AttemptCompleted: self._attempt_completed,
            AttemptFailed: self._attempt_failed,
            LeaseLost: self._lease_lost,
            JobCompleted: self._job_completed,
            ChainClosed: self._chain_closed,
        }

    # -- TraceContexts: called while the creating transaction is open

    def start_chain(self, chain_type_name: str) -> str | None:
        span = self._tracer.start_span(
            f"create chain {chain_type_name}",
            kind=SpanKind.PRODUCER,
            attributes={a.CHAIN_TYPE: chain_type_name},
        )
        return self._hold(span)

    def start_job(
        self,
        type_name: str,
        chain_type_name: str,
        chain_trace_context: str | None,
        origin_trace_context: str | None,
    ) -> str | None:
        chain_span = self._pending.get(chain_trace_context) if chain_trace_context else None
        span = self._tracer.start_span(
            f"create {type_name}",
            context=trace.set_span_in_context(chain_span)
            if chain_span is not None
            else parse(chain_trace_context),
            kind=SpanKind.PRODUCER,
            links=_link(origin_trace_context),
            attributes={
                a.MESSAGING_SYSTEM: a.SYSTEM,
                a.DESTINATION: type_name,
                a.OPERATION_NAME: "create",
                a.OPERATION_TYPE: "create",
            },
        )
        return self._hold(span)

    def start_blockers(
        self, trace_context: str | None, blocker_chain_ids: Sequence[str]
    ) -> list[str | None]:
        parent = parse(trace_context)
        out: list[str | None] = []
        for index, chain_id in enumerate(blocker_chain_ids):
            span = self._tracer.start_span(
                "await blocker",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes={a.BLOCKER_CHAIN_ID: chain_id, a.BLOCKER_INDEX: index},
            )
            out.append(self._hold(span))
        return out

    def abandon(self, trace_contexts: Sequence[str]) -> None:
        for context in trace_contexts:
            span = self._pending.pop(context, None)
            if span is not None:
                span.set_status(Status(StatusCode.ERROR, "rolled back"))
                span.end()

    def _hold(self, span: Span) -> str | None:
        context = traceparent(span)
        if context is None:
            span.end()  # not sampled: nothing to wait for
            return None
        pending = self._pending
        if len(pending) >= MAX_PENDING:
            oldest = next(iter(pending))
            self.abandon([oldest])
        pending[context] = span
        return context

    def _release(self, context: str | None) -> Span | None:
        return None if context is None else self._pending.pop(context, None)

    # -- events: after the commit

    def record(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def handler(self, cls: type[Event]) -> Callable[[Any], None] | None:
        """What records an event of ``cls`` (``None``: nothing to do for it)."""
        return self._handlers.get(cls)

    def _chain_created(self, e: ChainCreated) -> None:
        span = self._release(e.trace_context)
        if span is not None:
            span.set_attribute(a.CHAIN_ID, e.chain_id)
            span.end()

    def _chain_deduplicated(self, e: ChainDeduplicated) -> None:
        for context in (e.trace_context, e.job_trace_context):
            span = self._release(context)
            if span is None:
                continue
            span.set_attribute(a.CHAIN_ID, e.chain_id)
            span.set_attribute(a.CHAIN_DEDUPLICATED, True)
            for link in _link(e.existing_trace_context):
                span.add_link(link.context, {"queuert.link": "existing chain"})
            span.end()

    def _job_created(self, e: JobCreated) -> None:
        job = e.job
        span = self._release(job.trace_context)
        if span is not None:
            span.set_attribute(a.MESSAGE_ID, job.id)
            span.set_attribute(a.CHAIN_ID, job.chain_id)
            if e.blocked:
                span.set_attribute(a.BLOCKED, True)
            span.end()
        for blocker in e.blockers:
            link_span = self._release(blocker.trace_context)
            if link_span is None:
                continue
            link_span.update_name(f"await {blocker.chain_id}")
            link_span.set_attribute(a.JOB_ID, job.id)
            for link in _link(blocker.chain_trace_context):
                link_span.add_link(link.context, {"queuert.link": "blocker chain"})
            link_span.end()
            if not blocker.open:
                self._resolve(blocker.trace_context, blocker.chain_trace_context)

    def _resolve(self, link_context: str | None, chain_context: str | None) -> None:
        """The blocker link whose context is ``link_context`` is resolved (its chain closed)."""
        parent = parse(link_context)
        if parent is None:
            return
        self._tracer.start_span(
            "resolve blocker", context=parent, kind=SpanKind.CONSUMER, links=_link(chain_context)
        ).end()

    def _attempt_started(self, e: AttemptStarted) -> None:
        job = e.job
        span = self._tracer.start_span(
            f"process {job.type_name}",
            context=parse(job.trace_context),
            kind=SpanKind.CONSUMER,
            attributes=_process_attributes(job, e.worker_id),
        )
        self._attempts[(job.id, job.attempt)] = span
        self._chains[job.chain_id] = span
        if len(self._attempts) > MAX_PENDING:
            key = next(iter(self._attempts))
            evicted = self._attempts.pop(key)
            for chain_id in [c for c, s in self._chains.items() if s is evicted]:
                del self._chains[chain_id]
            evicted.end()

    def attempt_span(self, job: JobInfo) -> Span | None:
        """The span of the job's current attempt, while it runs."""
        return self._attempts.get((job.id, job.attempt))

    def _attempt_span(self, job: JobInfo, worker_id: str) -> Span:
        """The span of this attempt (one started now if it failed before it started)."""
        span = self._attempts.pop((job.id, job.attempt), None)
        if span is not None and self._chains.get(job.chain_id) is span:
            del self._chains[job.chain_id]
        if span is None:
            span = self._tracer.start_span(
                f"process {job.type_name}",
                context=parse(job.trace_context),
                kind=SpanKind.CONSUMER,
                attributes=_process_attributes(job, worker_id),
            )
        return span

    def _attempt_completed(self, e: AttemptCompleted) -> None:
        span = self._attempt_span(e.job, e.worker_id)
        span.set_attribute(a.MODE, e.mode)
        if e.continued_with is not None:
            span.set_attribute(a.CONTINUED_WITH, e.continued_with)
        span.end()

    def _attempt_failed(self, e: AttemptFailed) -> None:
        span = self._attempt_span(e.job, e.worker_id)
        span.set_attribute(a.ERROR_TYPE, e.error_type)
        span.set_attribute(a.RETRIED, e.retry_at is not None)
        if e.retry_at is not None:
            span.set_attribute(a.RETRY_AT, e.retry_at.isoformat())
        span.add_event(
            "exception", {"exception.type": e.error_type, "exception.message": e.error[:4000]}
        )
        span.set_status(Status(StatusCode.ERROR, f"{e.error_type}: {e.error[:200]}"))
        span.end()

    def _lease_lost(self, e: LeaseLost) -> None:
        span = self._attempts.pop((e.job.id, e.job.attempt), None)
        if span is not None and self._chains.get(e.job.chain_id) is span:
            del self._chains[e.job.chain_id]
        if span is not None:
            span.set_attribute(a.LEASE_LOST_REASON, e.reason)
            span.set_status(Status(StatusCode.ERROR, f"lost the job: {e.reason}"))
            span.end()

    def _job_completed(self, e: JobCompleted) -> None:
        if e.worker_id is not None:
            return  # the attempt span shows it
        job = e.job
        attributes: dict[str, Any] = {
            a.MESSAGING_SYSTEM: a.SYSTEM,
            a.DESTINATION: job.type_name,
            a.OPERATION_NAME: "complete",
            a.OPERATION_TYPE: "settle",
            a.MESSAGE_ID: job.id,
            a.CHAIN_ID: job.chain_id,
            a.WORKERLESS: True,
        }
        if e.continued_with is not None:
            attributes[a.CONTINUED_WITH] = e.continued_with
        self._tracer.start_span(
            f"complete {job.type_name}",
            context=parse(job.trace_context),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        ).end()

    def _chain_closed(self, e: ChainClosed) -> None:
        attempt = self._chains.get(e.chain_id)
        if attempt is not None:
            # closed by the attempt running now: an attribute of its span, not a span of its own
            # (nor a span event: one more object per job for what the span's end already dates)
            attempt.set_attribute(a.CHAIN_OUTCOME, e.outcome)
        elif (parent := parse(e.trace_context)) is not None:
            self._tracer.start_span(
                f"close chain {e.type_name}",
                context=parent,
                kind=SpanKind.INTERNAL,
                attributes={
                    a.CHAIN_TYPE: e.type_name,
                    a.CHAIN_ID: e.chain_id,
                    a.CHAIN_OUTCOME: e.outcome,
                },
            ).end()
        for link_context in e.blocker_trace_contexts:
            self._resolve(link_context, e.trace_context)


def _process_attributes(job: JobInfo, worker_id: str) -> dict[str, Any]:
    """The attributes of an attempt span (the chain's id and type are on the chain's span)."""
    fixed = _PROCESS.get(job.type_name)
    if fixed is None:
        fixed = {
            a.MESSAGING_SYSTEM: a.SYSTEM,
            a.DESTINATION: job.type_name,
            a.OPERATION_NAME: "process",
            a.OPERATION_TYPE: "process",
        }
        if len(_PROCESS) < _MAX_TYPES:
            _PROCESS[job.type_name] = fixed
    return {**fixed, a.MESSAGE_ID: job.id, a.JOB_ATTEMPT: job.attempt, a.WORKER_ID: worker_id}


_PROCESS: dict[str, dict[str, Any]] = {}
"""Per job type, the attempt span attributes that do not change from job to job (made once)."""

_MAX_TYPES = 1024
