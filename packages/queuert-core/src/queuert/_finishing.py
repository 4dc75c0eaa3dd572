"""Finishing a job, shared by the worker and workerless completion.

Three steps: check what the completion returned (a continuation job of a declared type, planned in
full, or an output that encodes; nothing written), write it (the continuation's row, then the job
closed as completed, guarded by the worker's lease when an owner is given), and after the close buffer
what the commit announces: the job's and the chain's events, the chain-closed notification, and
wake-ups for jobs that were waiting for the chain.

What a close announces is decided here once (:func:`_announce_closed_chain`), whether the hooks
buffer it for the commit (:meth:`Finishing.after_close_all`), the state adapter publishes it in the
transaction of a group commit (:func:`announced_by`), or it is known before the write, for a
completion that closes its job releasing nothing (:func:`closing_notifications`).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from datetime import datetime, timezone
from typing import Any, Generic, NamedTuple, TypeVar

from queuert._bound_transaction import BoundTransaction
from queuert._chain_creation import ChainCreation, PlannedJob
from queuert._mapping import job_info
from queuert._publishing import NotifyBuffer, Publishing
from queuert.codec import CodecError
from queuert.errors import JobTypeValidationError, NotJsonError
from queuert.hooks import TransactionHooks
from queuert.job_types import JobType, JobTypeRegistry
from queuert.json import JsonValue
from queuert.notify import Notifications
from queuert.observability import ChainClosed, JobCompleted, JobUnblocked
from queuert.payload import Payloads
from queuert.state import CompleteResult, Completion, Outcome, StateAdapter, StoredJob

__all__ = [
    "CheckedResult",
    "Finishing",
    "announced_by",
    "chain_closed",
    "closing_notifications",
]

TxT = TypeVar("TxT")


class CheckedResult(NamedTuple):
    """A completion's result after :meth:`Finishing.check_result`: a planned continuation, or
    (``continuation is None``) the encoded output."""

    continuation: PlannedJob | None
    output: JsonValue
    output_text: str | None = None
    """The output's compact JSON text, encoded once for the checks (``None`` with a continuation)."""


class Finishing(Generic[TxT]):
    """Checks and writes what completes a job, and buffers what its close announces."""

    def __init__(
        self,
        state: StateAdapter[TxT],
        registry: JobTypeRegistry,
        payloads: Payloads,
        creation: ChainCreation[TxT],
        publishing: Publishing,
    ) -> None:
        self._state = state
        self._registry = registry
        self._payloads = payloads
        self._creation = creation
        self._publishing = publishing

    def check_result(self, job: StoredJob, value: Any) -> CheckedResult:
        """Validate what a completion returned (a continuation job, fully, or the output); no writes."""
        jt = self._registry.require(job.type_name)
        spec = jt.spec()
        if isinstance(value, JobType):
            target = type(value)
            if target not in spec.continues_to:
                allowed = ", ".join(t.type_name for t in spec.continues_to) or "none"
                raise JobTypeValidationError(
                    "invalid_continuation",
                    job.type_name,
                    f"cannot continue to {target.type_name!r} (declared: {allowed})",
                )
            (plan,) = self._creation.plan([value], job)
            return CheckedResult(plan, None)
        if not spec.can_complete:
            raise JobTypeValidationError(
                "invalid_output",
                job.type_name,
                "this type must continue the chain, it declares no output",
            )
        try:
            output, text = self._payloads.encode_text(
                spec.output_type, value, what="output", type_name=job.type_name
            )
        except NotJsonError:
            raise
        except CodecError as exc:
            raise JobTypeValidationError("invalid_output", job.type_name, str(exc)) from exc
        return CheckedResult(None, output, text)

    async def finish(
        self, job: StoredJob, value: Any, *, worker_id: str | None, bound: BoundTransaction[TxT]
    ) -> tuple[CompleteResult, StoredJob | None]:
        """Complete ``job`` with an output or continue it with the job in ``value`` (the caller
        holds the job locked in ``bound``)."""
        return await self.write_result(
            job, self.check_result(job, value), worker_id=worker_id, bound=bound
        )

    async def write_result(
        self,
        job: StoredJob,
        checked: CheckedResult,
        *,
        worker_id: str | None,
        bound: BoundTransaction[TxT],
        owner: str | None = None,
    ) -> tuple[CompleteResult, StoredJob | None]:
        """Write a result from :meth:`check_result` (only if still leased by ``owner`` when given);
        returns the close and the continuation's row, if any."""
        continuation, output, _ = checked
        successor: StoredJob | None = None
        if continuation is not None:
            ((successor, _),) = await self._creation.write([continuation], job, bound)
            result = await self._state.complete_job(
                job.id,
                outcome="completed",
                worker_id=worker_id,
                succeeded_by_job_id=successor.id,
                owner=owner,
                tx=bound.tx,
            )
        else:
            result = await self._state.complete_job(
                job.id,
                outcome="completed",
                worker_id=worker_id,
                output=output,
                owner=owner,
                tx=bound.tx,
            )
        self.after_close(result, worker_id=worker_id, hooks=bound.hooks)
        return result, successor

    def after_close(
        self, result: CompleteResult, *, worker_id: str | None, hooks: TransactionHooks
    ) -> None:
        """Buffer the notifications and events of a closed job (completed, continued, failed,
        cancelled) in ``hooks``."""
        self.after_close_all((result,), worker_id=worker_id, hooks=hooks)

    def after_close_all(
        self,
        results: Sequence[CompleteResult | None],
        *,
        worker_id: str | None,
        hooks: TransactionHooks,
        published: bool = False,
    ) -> None:
        """:meth:`after_close` of each result that is not ``None`` (a batch closed in one
        transaction: the buffers are looked up once). ``published``: the state adapter published
        the notifications already (:func:`announced_by`, :func:`closing_notifications`), in the
        transaction that closed the jobs; only the events are buffered."""
        publishing = self._publishing
        notify: NotifyBuffer | None = None
        if not publishing.listens(JobCompleted.level):
            # nobody takes the events (JobCompleted, ChainClosed, JobUnblocked: all one level)
            if published:
                return
            for result in results:
                if result is None:
                    continue
                job = result.job
                if job.closes_chain:
                    if notify is None:
                        notify = publishing.notify_buffer(hooks)
                    _announce_closed_chain(
                        job.chain_id, result.unblocked, notify.closed_chains, notify.ready
                    )
            return
        events = publishing.event_buffer(hooks).events
        for result in results:
            if result is None:
                continue
            job = result.job
            now = job.completed_at or datetime.now(timezone.utc)
            if job.outcome == "completed":
                events.append(
                    JobCompleted(
                        job_info(job),
                        worker_id,
                        (now - job.created_at).total_seconds(),
                        continued_with=job.succeeded_by_job_id,
                    )
                )
            if notify is None and not published:
                notify = publishing.notify_buffer(hooks)
            if job.closes_chain:
                if notify is not None:
                    _announce_closed_chain(
                        job.chain_id, result.unblocked, notify.closed_chains, notify.ready
                    )
                assert job.outcome is not None
                events.append(chain_closed(job, job.outcome, now, result.blocker_trace_contexts))
                for unblocked in result.unblocked:
                    events.append(JobUnblocked(job_info(unblocked), job.chain_id))


def _announce_closed_chain(
    chain_id: str,
    unblocked: Sequence[StoredJob],
    closed_chains: set[str],
    ready: MutableMapping[str, int],
) -> None:
    """What a close that closes its chain announces (a close that continues the chain announces
    nothing): the chain closed, which wakes its waiters, and a wake-up of each job the close
    released, counted by type."""
    closed_chains.add(chain_id)
    for job in unblocked:
        ready[job.type_name] = ready.get(job.type_name, 0) + 1


_NONE: frozenset[str] = frozenset()


def announced_by(results: Sequence[CompleteResult | None]) -> Notifications:
    """What the closes of ``results`` announce (``None``: a refused completion, nothing): the
    :data:`~queuert.state_publishing.Announce` a state adapter publishes in the transaction that
    closed them."""
    closed: set[str] = set()
    ready: dict[str, int] = {}
    for result in results:
        if result is not None and result.job.closes_chain:
            _announce_closed_chain(result.job.chain_id, result.unblocked, closed, ready)
    return Notifications(ready, _NONE, frozenset(closed), _NONE)


def closing_notifications(completions: Sequence[Completion]) -> list[Notifications]:
    """What each completion of a job its worker claimed (:attr:`~queuert.state.Completion.claimed`)
    announces if it closes the job releasing no other job, known before the write: what
    :func:`announced_by` gives for that close. A closed job without a successor closes its chain
    (:attr:`~queuert.state.StoredJob.closes_chain`)."""
    found: list[Notifications] = []
    nothing = Notifications({}, _NONE, _NONE, _NONE)
    for completion in completions:
        claimed = completion.claimed
        assert claimed is not None, "known before the write only from the claimed job"
        if completion.succeeded_by_job_id is not None:
            found.append(nothing)
            continue
        closed: set[str] = set()
        ready: dict[str, int] = {}
        _announce_closed_chain(claimed.chain_id, (), closed, ready)
        found.append(Notifications(ready, _NONE, frozenset(closed), _NONE))
    return found


def chain_closed(
    job: StoredJob, outcome: Outcome, now: datetime, blocker_trace_contexts: Sequence[str] = ()
) -> ChainClosed:
    """The event of a chain closed by ``job``; its duration is known here only when ``job`` is the
    chain's first one."""
    duration = (now - job.created_at).total_seconds() if job.chain_index == 0 else None
    return ChainClosed(
        job.chain_id,
        job.chain_type_name,
        outcome,
        duration,
        job.chain_trace_context,
        tuple(blocker_trace_contexts),
    )
