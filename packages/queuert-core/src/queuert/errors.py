"""Typed errors raised by queuert.

Every error a caller may want to handle has its own class with the facts as attributes. All derive from
:class:`QueuertError`. Programmer mistakes (calling ``complete`` twice, a bad cursor) raise
:class:`UsageError`.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

__all__ = [
    "AttemptTimeoutError",
    "BlockerChainFailedError",
    "BlockerReference",
    "BlockerReferenceError",
    "ChainCancelledError",
    "ChainFailedError",
    "ChainNotFoundError",
    "ConfigurationError",
    "CpuLimitError",
    "DuplicateJobIdError",
    "DuplicateJobTypeError",
    "HandlerCrashedError",
    "HardTimeoutError",
    "InvalidIdentifierError",
    "InvalidJobIdError",
    "IsolatedHandlerError",
    "IsolationError",
    "JobAlreadyCompletedError",
    "JobLostError",
    "JobNotCompletedError",
    "JobNotFoundError",
    "JobNotTriggerableError",
    "JobTakenByAnotherWorkerError",
    "JobTypeMismatchError",
    "JobTypeValidationError",
    "MemoryLimitError",
    "NotJsonError",
    "NotifyAdapterClosedError",
    "PayloadTooLargeError",
    "QueuertError",
    "RescheduleJob",
    "StateAdapterClosedError",
    "StoredValueError",
    "SyncCallInEventLoopError",
    "SyncCallSuspendedError",
    "TransactionAbortedError",
    "TransactionHooksRequiredError",
    "UnknownJobTypeError",
    "UsageError",
    "WaitChainTimeoutError",
]


class QueuertError(Exception):
    """Base class of every error queuert raises on purpose."""


class UsageError(QueuertError):
    """The API was used in a way it does not support (a programming mistake)."""


class NotJsonError(QueuertError, TypeError):
    """A value that must be stored as JSON is not JSON-serialisable.

    ``path`` locates the offending value, e.g. ``$.items[2].when``.
    """

    def __init__(self, path: str, value: object, reason: str) -> None:
        self.path = path
        self.value_type = type(value).__name__
        self.reason = reason
        super().__init__(f"value at {path} is not JSON-serialisable ({self.value_type}): {reason}")


class PayloadTooLargeError(UsageError):
    """A job's input or output is larger, encoded as JSON, than the client's ``max_payload_bytes``;
    nothing was written. Store large data elsewhere and put its reference in the job."""

    def __init__(self, what: str, type_name: str, size: int, limit: int) -> None:
        self.what = what
        self.type_name = type_name
        self.size = size
        self.limit = limit
        super().__init__(
            f"the {what} of {type_name!r} is {size:,} bytes as JSON, over the limit of {limit:,}"
            " (Client(max_payload_bytes=...))"
        )


ValidationCode = Literal[
    "not_entry_point", "invalid_input", "invalid_output", "invalid_continuation", "invalid_blockers"
]


class JobTypeValidationError(QueuertError):
    """A job could not be created or completed because it breaks its job type's declaration."""

    def __init__(self, code: ValidationCode, type_name: str, details: str) -> None:
        self.code: ValidationCode = code
        self.type_name = type_name
        self.details = details
        super().__init__(f"{code} for job type {type_name!r}: {details}")


class StoredValueError(JobTypeValidationError):
    """A stored input or output cannot be read for processing (not valid JSON, or it no longer fits the
    job type's declared type), or a stored time of the job is not a time (``which`` names the field).
    A worker fails such a job at once, without retrying; reads return an
    :class:`~queuert.json.UndecodableValue` in place of the value (or the job's ``unreadable``
    reason) instead."""

    def __init__(self, which: str, type_name: str, reason: str) -> None:
        self.which = which
        code: ValidationCode = "invalid_input" if which == "input" else "invalid_output"
        super().__init__(code, type_name, f"stored {which} cannot be read: {reason}")


class UnknownJobTypeError(QueuertError):
    def __init__(self, type_name: str, registered: Sequence[str]) -> None:
        self.type_name = type_name
        self.registered_type_names = tuple(registered)
        super().__init__(
            f"job type {type_name!r} is not registered (registered: {', '.join(registered) or 'none'})"
        )


class DuplicateJobTypeError(QueuertError):
    def __init__(self, type_names: Sequence[str]) -> None:
        self.duplicate_type_names = tuple(type_names)
        super().__init__(f"job type names registered twice: {', '.join(type_names)}")


class InvalidJobIdError(UsageError):
    """An id the state adapter's id policy does not accept (see :class:`queuert.ids.IdPolicy`).

    ``source`` says who made it (``caller`` or ``generator``), ``argument`` where it was passed
    (e.g. ``chain_ids[2]``), ``expected`` what the policy accepts. Raised before the store is touched.
    """

    def __init__(
        self,
        job_id: object,
        source: Literal["caller", "generator"] = "caller",
        *,
        expected: str | None = None,
        argument: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.source = source
        self.expected = expected
        self.argument = argument
        where = f" as {argument}" if argument else ""
        hint = f": expected {expected}" if expected else ""
        super().__init__(f"invalid job id {job_id!r}{where} (from the {source}){hint}")


class DuplicateJobIdError(QueuertError):
    """A caller-supplied job id is already used by another job."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"a job with id {job_id!r} already exists")


class JobNotFoundError(QueuertError):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id!r} not found")


class ChainNotFoundError(QueuertError):
    def __init__(self, chain_id: str) -> None:
        self.chain_id = chain_id
        super().__init__(f"chain {chain_id!r} not found")


class JobAlreadyCompletedError(QueuertError):
    """The job (or the chain's current job) is already closed."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id!r} is already completed")


class JobTakenByAnotherWorkerError(QueuertError):
    def __init__(self, job_id: str, worker_id: str | None, leased_by: str | None) -> None:
        self.job_id = job_id
        self.worker_id = worker_id
        self.leased_by = leased_by
        super().__init__(f"job {job_id!r} is now leased by {leased_by!r}, not by {worker_id!r}")


class JobNotCompletedError(UsageError):
    """A handler returned ``None`` without completing its job, and the job type's output is not
    ``None``. The worker closes the job as *failed* without a retry: the handler ran, so a retry
    would repeat its side effects. Return the output (or the next job), or call
    ``attempt.complete(...)``."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name
        super().__init__(
            f"the handler for {type_name!r} returned None without completing the job: return its "
            "output or the next job, or call attempt.complete(...). The job was closed as failed, "
            "not retried, because a retry would repeat what the handler already did"
        )


class JobNotTriggerableError(QueuertError):
    def __init__(self, job_id: str, status: str) -> None:
        self.job_id = job_id
        self.status = status
        super().__init__(f"job {job_id!r} cannot be triggered: it is {status}")


class JobLostError(QueuertError):
    """The worker no longer owns the job it was running (``reason``: ``taken_by_another_worker``,
    ``not_found``, ``already_completed`` or ``cancelled``); its completion is refused."""

    def __init__(self, job_id: str, reason: str, leased_by: str | None = None) -> None:
        self.job_id = job_id
        self.reason = reason
        self.leased_by = leased_by
        super().__init__(f"job {job_id} was lost: {reason}")


class AttemptTimeoutError(QueuertError, TimeoutError):
    """An attempt ran longer than its handler's ``timeout``: the handler was cancelled, and the
    attempt fails and is retried with backoff like any failure."""

    def __init__(self, type_name: str, timeout: float) -> None:
        self.type_name = type_name
        self.timeout = timeout
        super().__init__(
            f"the attempt of {type_name!r} ran longer than its timeout of {timeout:g}s"
        )


class BlockerChainFailedError(QueuertError):
    """A job whose type fails on blocker failure found a blocker chain closed as failed or
    cancelled; the job is closed as failed without running its handler."""

    def __init__(self, chain_id: str, outcome: str) -> None:
        self.chain_id = chain_id
        self.outcome = outcome
        super().__init__(f"blocker chain {chain_id} closed as {outcome}")


class JobTypeMismatchError(QueuertError):
    def __init__(self, expected: str, actual: str) -> None:
        self.expected_type_name = expected
        self.actual_type_name = actual
        super().__init__(f"expected a {expected!r} job or chain, found {actual!r}")


class WaitChainTimeoutError(QueuertError, TimeoutError):
    def __init__(self, chain_id: str, timeout: timedelta) -> None:
        self.chain_id = chain_id
        self.timeout = timeout
        super().__init__(f"chain {chain_id!r} did not close within {timeout.total_seconds():g}s")


class ChainFailedError(QueuertError):
    """``wait_for_chain`` found the chain closed as *failed* (its job ran out of attempts)."""

    def __init__(self, chain_id: str, job_id: str, error: str | None) -> None:
        self.chain_id = chain_id
        self.job_id = job_id
        self.error = error
        super().__init__(f"chain {chain_id!r} failed at job {job_id!r}: {error}")


class ChainCancelledError(QueuertError):
    """``wait_for_chain`` found the chain closed as *cancelled*."""

    def __init__(self, chain_id: str) -> None:
        self.chain_id = chain_id
        super().__init__(f"chain {chain_id!r} was cancelled")


@dataclass(frozen=True)
class BlockerReference:
    """``chain_id`` (asked to be deleted) blocks ``referenced_by_job_id`` (not asked to be deleted)."""

    chain_id: str
    referenced_by_job_id: str


class BlockerReferenceError(QueuertError):
    """``delete_chains`` refused: jobs outside the set are blocked by chains inside it."""

    def __init__(self, references: Sequence[BlockerReference]) -> None:
        self.references = tuple(references)
        listed = ", ".join(f"{r.chain_id} (blocks {r.referenced_by_job_id})" for r in references)
        super().__init__(f"chains are still referenced as blockers: {listed}")


class TransactionHooksRequiredError(UsageError):
    """A mutating call got a transaction that no hooks scope is bound to."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "this call needs transaction hooks: open the transaction with client.transaction(), "
            "wrap your own transaction in `async with client.hooks(tx):`, or pass hooks=..."
        )


class SyncCallInEventLoopError(UsageError):
    """A :class:`~queuert.SyncClient` method was called on a thread running an event loop: its
    blocking database calls would stall every task of that loop (use :class:`~queuert.Client`
    there, or call the sync client from a worker thread)."""

    def __init__(self) -> None:
        super().__init__(
            "SyncClient blocks: it cannot run on a thread with a running event loop; use the "
            "async Client there (or call it in a thread, e.g. asyncio.to_thread)"
        )


class SyncCallSuspendedError(QueuertError):
    """An operation of a synchronous backend tried to wait for the event loop: the backend's
    operations must complete without suspending (a backend bug, or an async connection given to a
    synchronous backend). Nothing was awaited; the caller's transaction may hold part of the call's
    writes, so roll it back."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        super().__init__(
            f"{operation} tried to suspend: a synchronous backend must complete its operations "
            "without waiting for an event loop (roll the transaction back)"
        )


class ConfigurationError(UsageError, ValueError):
    """An adapter was given options it cannot work with (a malformed key prefix or subject, both or
    neither of two alternatives, a non-positive timeout); nothing was opened."""


class InvalidIdentifierError(QueuertError, ValueError):
    """A configured SQL identifier (schema, table prefix, ...) is not a plain identifier."""

    def __init__(self, what: str, value: str) -> None:
        self.what = what
        self.value = value
        super().__init__(f"invalid {what} {value!r}: must match [A-Za-z_][A-Za-z0-9_]*")


class TransactionAbortedError(QueuertError):
    """A statement failed in this transaction, so it cannot go on.

    Every later operation in it raises this until the savepoint that was open when the statement
    failed is rolled back; if no savepoint was open, the transaction cannot commit: ending it rolls
    it back and raises this. Every state adapter raises (or maps its driver's error to) this class.
    """

    def __init__(
        self, message: str = "the transaction is aborted: a statement failed in it"
    ) -> None:
        super().__init__(message)


class StateAdapterClosedError(QueuertError):
    def __init__(self) -> None:
        super().__init__("the state adapter is closed")


class NotifyAdapterClosedError(QueuertError):
    def __init__(self) -> None:
        super().__init__("the notify adapter is closed")


class RescheduleJob(Exception):
    """Raise from a handler to retry the job exactly when asked, instead of with backoff.

    ``RescheduleJob(after=timedelta(minutes=5))`` or ``RescheduleJob(at=datetime(...))``; ``reason`` is
    recorded as the job's last error.
    """

    def __init__(
        self,
        *,
        after: timedelta | float | None = None,
        at: datetime | None = None,
        reason: str | None = None,
    ) -> None:
        from queuert.schedule import Schedule

        self.schedule = Schedule(at=at, after=after)
        self.reason = reason
        super().__init__(reason or f"reschedule requested ({self.schedule})")


class IsolationError(QueuertError):
    """An isolated handler's process was stopped by a limit or died: the attempt fails and is retried
    with backoff like any failure."""

    def __init__(self, type_name: str, message: str) -> None:
        self.type_name = type_name
        super().__init__(message)


class HardTimeoutError(IsolationError, TimeoutError):
    """The handler ran longer than its ``hard_timeout``: its process was killed."""

    def __init__(self, type_name: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(
            type_name,
            f"the isolated handler of {type_name!r} ran longer than its hard timeout of "
            f"{timeout:g}s and was killed",
        )


class MemoryLimitError(IsolationError, MemoryError):
    """The handler needed more address space than its ``memory_limit``."""

    def __init__(self, type_name: str, limit: int) -> None:
        self.limit = limit
        super().__init__(
            type_name,
            f"the isolated handler of {type_name!r} exceeded its memory limit of {limit} bytes",
        )


class CpuLimitError(IsolationError):
    """The handler used more CPU time than its ``cpu_limit``: its process was killed."""

    def __init__(self, type_name: str, limit: float) -> None:
        self.limit = limit
        super().__init__(
            type_name,
            f"the isolated handler of {type_name!r} used more than its CPU limit of {limit:g}s",
        )


class HandlerCrashedError(IsolationError):
    """The handler's process died (a crash, a signal, ``os._exit``) before it answered."""

    def __init__(self, type_name: str, returncode: int | None) -> None:
        self.returncode = returncode
        if returncode is not None and returncode < 0:
            try:
                how = f"was killed by {signal.Signals(-returncode).name}"
            except ValueError:
                how = f"was killed by signal {-returncode}"
        else:
            how = f"exited with code {returncode}"
        super().__init__(type_name, f"the isolated handler of {type_name!r} {how}")


class IsolatedHandlerError(QueuertError):
    """The isolated handler raised: ``error_type`` and ``message`` are the original exception's, and
    ``remote_traceback`` its traceback in the handler's process."""

    def __init__(self, error_type: str, message: str, remote_traceback: str) -> None:
        self.error_type = error_type
        self.message = message
        self.remote_traceback = remote_traceback
        super().__init__(f"{error_type}: {message}")
