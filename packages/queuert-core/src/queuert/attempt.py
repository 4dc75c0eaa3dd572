"""What a handler receives: :class:`Attempt`, its cancellation signal and processing modes.

A handler is ``async def handle(attempt: Attempt[MyType]) -> Output | NextJob``. It reads
``attempt.input`` (typed) and ``attempt.blockers`` (typed blocker chains), optionally calls ``prepare``,
and completes the job by returning its output or a job of a declared continuation type. Instead of
returning a value it may call ``complete`` (with a callback that runs in the completing transaction,
for atomic work). A handler that does neither completes a job whose output type is ``None``; for any
other type the job closes as failed without a retry (:class:`~queuert.errors.JobNotCompletedError`),
since a retry would repeat whatever the handler already did.

Modes:

* **atomic** — ``prepare("atomic")``: the callbacks given to ``prepare`` and ``complete`` run in one
  transaction (opened when the first of them runs), the job's completion is written in it when the
  handler returns, and it commits only if that completion finds the job still leased by the worker;
  otherwise it rolls back, your writes with it. Use for short database work (shorter than the lease:
  the lease is not renewed while the transaction is open).
* **staged** — ``prepare("staged")``: the handler works outside any transaction while the worker keeps
  renewing the lease; a callback given to ``complete`` runs in a new transaction that ends, the same
  way, with the completion guarded by the lease.
* **auto** (no ``prepare``) — decided at the handler's first suspension: if ``complete`` is called before
  the handler awaited anything that suspended, the attempt is atomic; otherwise staged.

In both modes the completing transaction commits only after the handler returns; an exception raised
after ``complete`` rolls the completion back and the attempt counts as failed. A returned value
completes the job as ``complete`` would have.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, Literal, Protocol, TypeVar

from queuert._bound_transaction import BoundTransaction, TransactionScope
from queuert._core import Core
from queuert._declared import Completable, WithBlockers
from queuert._finishing import CheckedResult
from queuert.client import Client, TxContext
from queuert.errors import (
    JobAlreadyCompletedError,
    JobLostError,
    JobNotCompletedError,
    JobNotFoundError,
    JobTakenByAnotherWorkerError,
    UsageError,
)
from queuert.job_types import JobType
from queuert.json import JsonValue
from queuert.models import Job
from queuert.state import CompleteResult, Completion, StoredJob

__all__ = ["Attempt", "AttemptHost", "CancelReason", "CancellationSignal", "Mode"]

J = TypeVar("J", covariant=True)
"""The job type of the attempt's job."""
I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741
C = TypeVar("C")
B = TypeVar("B")
T = TypeVar("T")

Mode = Literal["atomic", "staged"]
CancelReason = Literal[
    "taken_by_another_worker", "not_found", "already_completed", "cancelled", "shutdown", "timeout"
]
LOST_REASONS = frozenset({"taken_by_another_worker", "not_found", "already_completed", "cancelled"})


class CancellationSignal:
    """Tells a handler to stop: the worker lost the job (``reason`` says why) or is shutting down.

    ``shutdown`` is a request: the handler may finish within the worker's shutdown timeout, after
    which it is cancelled. For the other reasons the handler is cancelled at once and its completion
    would be refused anyway.
    """

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        """Made by the first :meth:`wait` (most attempts never wait on their signal)."""
        self.reason: CancelReason | None = None

    def is_set(self) -> bool:
        return self.reason is not None

    async def wait(self) -> CancelReason:
        if self.reason is None:
            if self._event is None:
                self._event = asyncio.Event()
            await self._event.wait()
        assert self.reason is not None
        return self.reason

    def _set(self, reason: CancelReason) -> None:
        if self.reason is None or (self.reason == "shutdown" and reason != "shutdown"):
            self.reason = reason
        if self._event is not None:
            self._event.set()


class OwnershipLostError(JobLostError):
    """:class:`~queuert.errors.JobLostError` with the reason typed as a :data:`CancelReason`."""

    def __init__(self, job_id: str, reason: CancelReason, leased_by: str | None = None) -> None:
        super().__init__(job_id, reason, leased_by)
        self.reason: CancelReason = reason


class AttemptHost(Protocol):
    """What an attempt needs from the worker running it (the worker hands each attempt one)."""

    @property
    def worker_id(self) -> str: ...

    @property
    def client(self) -> Client[Any]:
        """The client the worker was built on (callbacks get it in their :class:`TxContext`)."""
        ...

    @property
    def core(self) -> Core[Any]:
        """That client's internals: bound transactions and job finishing."""
        ...

    def complete_later(
        self, job: StoredJob, output: JsonValue, output_text: str | None
    ) -> Awaitable[CompleteResult | None]:
        """Complete ``job`` with ``output`` (``output_text``: its JSON text, when already encoded)
        in the worker's next group commit, only if the worker still holds its lease (``None`` if it
        does not)."""
        ...

    async def check_owned(self, job_id: str, *, tx: Any = None) -> None:
        """Raise :class:`OwnershipLostError` unless the job is open and leased by the worker; with
        ``tx``, the row stays locked until that transaction ends."""
        ...

    def hold(self, job_id: str) -> None:
        """A transaction of the attempt is open: it holds the job's row locked, or will when it
        writes the completion (the lease is not renewed meanwhile: a renewal would wait for that
        lock)."""
        ...

    def unhold(self, job_id: str) -> None:
        """That transaction ended."""
        ...

    def suspended(self, job_id: str) -> None:
        """The handler awaited something for the first time (it may now run long)."""
        ...


class Attempt(Generic[J]):
    """One execution of a handler for one job."""

    def __init__(
        self,
        *,
        host: AttemptHost,
        stored: StoredJob,
        job: Job,
        input: Any,
        blockers: tuple[Any, ...],
    ) -> None:
        self._host = host
        self._stored = stored
        self.job = job
        self._input = input
        self._blockers = blockers
        self.signal = CancellationSignal()
        self.context: dict[str, Any] = {}
        """Free-form values middleware puts here for the handler (e.g. a request id)."""
        self.mode: Mode | None = None
        self._prepared = False
        self._completed = False
        self._suspended = False
        self._auto = False
        self._scope: TransactionScope[Any] | None = None
        """The job's open transaction (entered), or ``None``."""
        self._bound: BoundTransaction[Any] | None = None
        """The open transaction of the job, with its hooks."""
        self._pristine = False
        """No user callback has run in the open transaction yet."""
        self._in_transaction = False
        """A transaction of the job is being opened or is open."""
        self._watch_deferred = False
        """The handler first suspended inside the job's transaction: the worker is told when that
        transaction ends (while it is open the worker ignores ownership hints for the job anyway)."""
        self._finishing = False
        self.continued_with: str | None = None
        self._checked: CheckedResult | None = None
        self._returned: object = None
        """What the handler returned (set by the worker when it returns)."""

    # -- typed views ------------------------------------------------------------------------------

    @property
    def input(self: Attempt[JobType[I, Any]]) -> I:
        value: I = self._input
        return value

    @property
    def blockers(self: Attempt[WithBlockers[B]]) -> B:
        """The blocker chains, slot by slot, with their typed outputs (closed by the time the job runs)."""
        value: B = self._blockers  # type: ignore[assignment]
        return value

    @property
    def number(self) -> int:
        """1 for the first attempt, 2 for the first retry, ..."""
        return self._stored.attempt

    @property
    def worker_id(self) -> str:
        return self._host.worker_id

    @property
    def completed(self) -> bool:
        return self._completed

    # -- prepare / complete -----------------------------------------------------------------------

    async def prepare(
        self, mode: Mode, fn: Callable[[TxContext[Any]], Awaitable[T]] | None = None
    ) -> T | None:
        """Choose the processing mode, optionally running ``fn`` in a transaction of the job.

        ``atomic``: the transaction stays open for ``complete`` and commits with the completion (it is
        opened only once something runs in it). ``staged``: it holds the job locked, checked still
        leased by the worker, and commits right away (only opened if ``fn`` is given). Returns
        ``fn``'s result. Call at most once, before ``complete``.
        """
        if self._auto:
            raise UsageError(
                "prepare cannot be called after the mode was set automatically (the handler awaited first)"
            )
        if self._prepared:
            raise UsageError("prepare can only be called once")
        if self._completed:
            raise UsageError("prepare must come before complete")
        if mode not in ("atomic", "staged"):
            raise UsageError(f"mode must be 'atomic' or 'staged', not {mode!r}")
        self._prepared = True
        self.mode = mode
        if fn is None:
            return None
        if mode == "atomic":
            return await self._open_and_run(fn)
        await self._open()
        try:
            result = await self._in_savepoint(fn)
        except BaseException as exc:
            await self._close(exc)
            raise
        await self._close(None)
        return result

    async def complete(
        self: Attempt[Completable[O, C]],
        result: O | C | Callable[[TxContext[Any]], Awaitable[O | C]],
    ) -> None:
        """Complete the job with its output, or continue the chain with a job of a declared
        continuation type. ``result`` may be an async function of the transaction context that
        returns either (to write your own rows in the same transaction).

        The result is validated at once (a wrong output or an undeclared continuation raises here);
        it is written, and the transaction commits, when the handler returns. A handler that calls
        ``complete`` returns ``None``; returning the output instead does the same with less code.
        """
        self._check_can_complete()
        if self.mode is None:
            self.mode = "staged" if self._suspended else "atomic"
        if callable(result) and not isinstance(result, JobType):
            if self._scope is None:
                await self._open(guard=False)
            callback = result

            async def run(ctx: TxContext[Any]) -> Any:
                return await callback(ctx)

            value: Any = await self._in_savepoint(run)
        else:
            value = result
        self._checked = self._host.core.finishing.check_result(self._stored, value)
        self._completed = True

    def _settle_returned(self) -> None:
        """Make what the handler returned its result: a value completes the job (as ``complete``
        would), ``None`` needs ``complete`` to have been called or a type whose output is ``None``.

        Raises :class:`UsageError` when the handler returned a value after calling ``complete``, and
        :class:`JobNotCompletedError` when it did neither (the worker closes the job as failed)."""
        value = self._returned
        if self._completed:
            if value is not None:
                raise UsageError(
                    "the handler called attempt.complete(...) and also returned a value: "
                    "complete the job one way only"
                )
            return
        core = self._host.core
        if value is None and not (
            core.registry.require(self._stored.type_name).spec().completes_with_none
        ):
            raise JobNotCompletedError(self._stored.type_name)
        if self.mode is None:
            self.mode = "staged" if self._suspended else "atomic"
        self._checked = core.finishing.check_result(self._stored, value)
        self._completed = True

    async def _finish(self) -> None:
        """Write the result given to ``complete`` and commit (the handler returned normally).

        A plain output with no transaction open goes to the worker's completer, which writes the
        completions of attempts finishing together in one state operation; a continuation opens a
        transaction of its own. Either way the write checks the job is still leased by this worker,
        in the same statement: if it is not, the transaction rolls back (with whatever the handler's
        callbacks wrote in it) and :class:`OwnershipLostError` tells why.
        """
        checked = self._checked
        assert checked is not None
        host = self._host
        self._finishing = True
        if self._scope is None and checked.continuation is None:
            result = await host.complete_later(self._stored, checked.output, checked.output_text)
            if result is None:
                await host.check_owned(self.job.id)  # raises OwnershipLostError with the reason
                raise OwnershipLostError(self.job.id, "taken_by_another_worker")
            return
        if self._scope is None:
            await self._open(guard=False)
        bound = self._bound
        assert bound is not None
        if checked.continuation is None:
            # The exactly-once path (an output, in the job's open transaction): the completion of
            # the job as the worker claimed it, with the output text the check encoded, so that the
            # store returns the few columns the close alone knows instead of the whole row.
            core = host.core
            worker_id = host.worker_id
            (closed,) = await core.state.complete_jobs(
                (
                    Completion(
                        self._stored.id,
                        output=checked.output,
                        output_text=checked.output_text,
                        claimed=self._stored,
                    ),
                ),
                worker_id=worker_id,
                owner=worker_id,
                tx=bound.tx,
            )
            if closed is None:
                # the lease was lost while the handler ran: nothing of this attempt may commit
                lost = OwnershipLostError(self.job.id, "taken_by_another_worker")
                await self._close(lost)
                await host.check_owned(self.job.id)  # raises OwnershipLostError with the reason
                raise lost
            core.finishing.after_close_all((closed,), worker_id=worker_id, hooks=bound.hooks)
            self.continued_with = None
            # the commit, as _close(None) makes it (inline: one coroutine less per job)
            scope, self._scope, self._bound = self._scope, None, None
            assert scope is not None
            try:
                await scope.__aexit__(None, None, None)
            finally:
                host.unhold(self.job.id)
                self._transaction_ended()
            return
        try:
            _result, successor = await host.core.finishing.write_result(
                self._stored,
                checked,
                worker_id=host.worker_id,
                bound=bound,
                owner=host.worker_id,
            )
        except (JobTakenByAnotherWorkerError, JobAlreadyCompletedError, JobNotFoundError) as exc:
            # the lease was lost while the handler ran: nothing of this attempt may commit
            await self._close(exc)
            await host.check_owned(self.job.id)  # raises OwnershipLostError with the reason
            raise  # still ours: the refusal was about another row, a failure of the attempt
        self.continued_with = successor.id if successor is not None else None
        await self._close(None)

    def _check_can_complete(self) -> None:
        if self._completed:
            raise UsageError("complete can only be called once")

    # -- transaction plumbing (used by the worker) ------------------------------------------------

    def _on_first_suspension(self) -> None:
        self._suspended = True
        if self._in_transaction:
            self._watch_deferred = True
        else:
            self._host.suspended(self.job.id)
        if self.mode is None and not self._prepared and not self._completed:
            self.mode = "staged"
            self._auto = True

    async def _open(self, *, guard: bool = True) -> None:
        """Open the transaction of the job; with ``guard``, lock the job at once and check it is still
        ours (before user code runs in it). Without: a transaction that ends with the job's guarded
        completion, or rolls back, needs no check up front."""
        host = self._host
        scope = host.core.transactions.transaction()
        self._in_transaction = True
        try:
            bound = await scope.__aenter__()
        except BaseException:
            self._transaction_ended()
            raise
        self._scope, self._bound = scope, bound
        self._pristine = True
        host.hold(self.job.id)
        if not guard:
            return
        try:
            await host.check_owned(self.job.id, tx=bound.tx)
        except BaseException as exc:
            await self._close(exc)
            raise

    async def _open_and_run(self, fn: Callable[[TxContext[Any]], Awaitable[T]]) -> T:
        """``_open(guard=False)``, then ``fn`` first in the new transaction (``_in_savepoint`` of a
        pristine one), in one coroutine: ``prepare("atomic", fn)``, every job of the exactly-once
        path, waits on the BEGIN and on ``fn`` through one frame less."""
        host = self._host
        scope = host.core.transactions.transaction()
        self._in_transaction = True
        try:
            bound = await scope.__aenter__()
        except BaseException:
            self._transaction_ended()
            raise
        self._scope, self._bound = scope, bound
        host.hold(self.job.id)
        try:
            return await fn(TxContext(host.client, bound.tx, bound.hooks))
        except BaseException as exc:
            await self._close(exc)
            raise

    async def _close(self, exc: BaseException | None) -> None:
        """Commit (``exc is None``) or roll back the open transaction."""
        scope, self._scope, self._bound = self._scope, None, None
        if scope is None:
            return
        try:
            if exc is None:
                await scope.__aexit__(None, None, None)
            else:
                await scope.__aexit__(type(exc), exc, exc.__traceback__)
        finally:
            self._host.unhold(self.job.id)
            self._transaction_ended()

    def _transaction_ended(self) -> None:
        self._in_transaction = False
        if self._watch_deferred and not self._finishing:
            # the handler goes on after the transaction (staged, or a callback's failure caught)
            self._watch_deferred = False
            self._host.suspended(self.job.id)

    async def _in_savepoint(self, fn: Callable[[TxContext[Any]], Awaitable[T]]) -> T:
        """Run a user callback so that, if it fails, only its own work is undone and the attempt can
        go on: in a savepoint when the transaction already holds work of an earlier callback, else
        directly, rolling the whole transaction back on failure (the next callback, continuation or
        completion that needs one opens a new transaction)."""
        bound = self._bound
        assert bound is not None
        host = self._host
        core = host.core
        if self._pristine:
            self._pristine = False
            try:
                return await fn(TxContext(host.client, bound.tx, bound.hooks))
            except BaseException as exc:
                await self._close(exc)
                raise
        if not core.state.capabilities.savepoints:
            restore = bound.hooks.checkpoint()
            try:
                return await fn(TxContext(host.client, bound.tx, bound.hooks))
            except BaseException:
                restore()
                raise
        async with core.transactions.savepoint(bound) as inner:
            return await fn(TxContext(host.client, inner.tx, inner.hooks))


class FirstSuspension(Generic[T]):
    """Runs a coroutine and calls ``on_suspend`` the first time it yields to the event loop."""

    def __init__(self, coro: Awaitable[T], on_suspend: Callable[[], None]) -> None:
        self._coro = coro
        self._on_suspend = on_suspend

    def __await__(self) -> Generator[Any, Any, T]:
        iterator = self._coro.__await__()
        try:
            value = iterator.send(None)
        except StopIteration as stop:
            result: T = stop.value
            return result
        self._on_suspend()
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
                raise
            except BaseException as exc:
                try:
                    value = iterator.throw(exc)
                except StopIteration as stop:
                    result = stop.value
                    return result
                continue
            if sent is not None:
                try:
                    value = iterator.send(sent)
                except StopIteration as stop:
                    result = stop.value
                    return result
                continue
            # asyncio resumes a task with send(None): from here on the interpreter delegates
            # every resumption to the coroutine itself (no Python frame of ours per step)
            result = yield from iterator
            return result
