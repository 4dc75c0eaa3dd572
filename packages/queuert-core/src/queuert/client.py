"""The client: start chains inside your transaction, read them, wait for them, manage them.

Every mutating call runs inside the caller's transaction (``tx=``) so it commits or rolls back with the
caller's own writes. Side effects (notifications, observability events) are buffered in transaction
hooks and flushed only after the commit (see :mod:`queuert.hooks`).

The client is what users call; the parts it is built from (after-commit publishing, bound
transactions, row mapping, chain creation, job finishing) live in the core's internal modules and are
shared with the worker through :class:`queuert._core.Core`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, Generic, TypeVar, overload

from queuert._bound_transaction import TransactionScope
from queuert._chain_creation import PlannedJob
from queuert._core import Core
from queuert._declared import WithChainResult, WithOutput, WorkerlessCompletable
from queuert.codec import Codec, DefaultCodec
from queuert.duration import Duration, to_timedelta
from queuert.errors import (
    BlockerReferenceError,
    ChainNotFoundError,
    JobAlreadyCompletedError,
    JobNotFoundError,
    JobNotTriggerableError,
    JobTypeMismatchError,
    UsageError,
    WaitChainTimeoutError,
)
from queuert.hooks import TransactionHooks
from queuert.ids import check_id, check_ids
from queuert.in_memory.notify import InProcessNotifyAdapter
from queuert.job_types import AnyJobType, EntryJobType, JobType, JobTypeRegistry, job_type_name
from queuert.models import Chain, Job
from queuert.notify import NotifyAdapter
from queuert.observability import (
    ChainDeleted,
    JobTriggered,
    LoggingObservability,
    NotifyAdapterError,
    ObservabilityAdapter,
)
from queuert.paging import check_page
from queuert.payload import DEFAULT_MAX_PAYLOAD_BYTES
from queuert.state import (
    ChainFilter,
    ChainStatus,
    CreatedJob,
    JobActivity,
    JobFilter,
    JobStatus,
    Order,
    Page,
    QueueStats,
    StateAdapter,
    StoredChain,
    in_creation_order,
)

__all__ = ["Client", "TxContext", "WorkerlessCompletion"]

TxT = TypeVar("TxT")
J = TypeVar("J", bound=EntryJobType[Any, Any])
JT = TypeVar("JT", bound=JobType[Any, Any])
I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741
C = TypeVar("C")
R = TypeVar("R")

_WAIT_POLL = timedelta(seconds=1)
MAX_ACTIVITY_BUCKETS = 1440

TypeNames = Sequence[str | AnyJobType]
"""Job types by stored name or by class (``[SendWelcome, "send_receipt"]``)."""


@dataclass
class TxContext(Generic[TxT]):
    """The transaction a callback runs in, with shortcuts that use it.

    Handed to ``prepare``/``complete`` callbacks and to workerless completion: use ``tx`` for your own
    statements and ``start_chain`` to start chains (e.g. blockers of a continuation) in the same
    transaction.
    """

    client: Client[TxT]
    tx: TxT
    hooks: TransactionHooks

    async def start_chain(self, job: J) -> Chain[J]:
        return await self.client.start_chain(job, tx=self.tx, hooks=self.hooks)

    async def start_chains(self, jobs: Sequence[J]) -> list[Chain[J]]:
        return await self.client.start_chains(jobs, tx=self.tx, hooks=self.hooks)


class Client(Generic[TxT]):
    """Entry point of queuert for application code.

    ``Client(state, notify=..., job_types=[...], observability=..., codec=...)``.

    ``job_types`` lists job type classes this client starts or reads (their continuation targets and
    blocker types are added automatically); a worker built on the client adds its handlers' types by
    itself, so a process that runs a worker need not list them here (listing them too is fine).
    ``notify`` defaults to an :class:`~queuert.in_memory.InProcessNotifyAdapter` of the client's own:
    workers and ``wait_for_chain`` in this process wake at once, other processes do not hear it (give
    every process a networked notify adapter, or let them poll). ``observability`` defaults to
    structured logging; ``codec`` to :class:`~queuert.codec.DefaultCodec`. ``max_payload_bytes``
    limits each input and output, encoded as JSON (1 MiB by default, ``None`` for no limit; see
    :mod:`queuert.payload` for what else a stored value may not hold). ``close()`` waits for
    pending publishes and closes the notify adapter the client made; adapters you pass in are
    closed by you (``async with`` them).
    """

    def __init__(
        self,
        state: StateAdapter[TxT],
        *,
        notify: NotifyAdapter | None = None,
        job_types: Sequence[AnyJobType] = (),
        observability: ObservabilityAdapter | None = None,
        codec: Codec | None = None,
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.state = state
        self._owns_notify = notify is None
        self.notify: NotifyAdapter = notify if notify is not None else InProcessNotifyAdapter()
        self.observability: ObservabilityAdapter = (
            observability if observability is not None else LoggingObservability()
        )
        self.codec: Codec = codec if codec is not None else DefaultCodec()
        self.registry = JobTypeRegistry(job_types)
        self._core: Core[TxT] = Core(
            state,
            notify=self.notify,
            observability=self.observability,
            codec=self.codec,
            registry=self.registry,
            max_payload_bytes=max_payload_bytes,
        )
        """The internals this client is built from; the worker and attempts share them."""
        self._ids = state.ids
        """The adapter's id policy: every id a caller passes is checked with it first."""
        self._closed = False

    # -- transactions and hooks -----------------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[TxT]:
        """Open a transaction of the state adapter with hooks bound to it; side effects are
        flushed after the commit and dropped on rollback (``async with client.transaction() as
        tx``)."""
        return _TxOf(self._core.transactions.transaction())

    @asynccontextmanager
    async def hooks(self, tx: Any = None) -> AsyncIterator[TransactionHooks]:
        """Transaction hooks for your own transaction.

        Open it *around* the transaction: the hooks flush when this block exits normally (after your
        commit) and are dropped when it raises. With ``tx`` (e.g. the asyncpg connection you will run
        the transaction on) calls given that ``tx`` find the hooks by themselves; otherwise pass
        ``hooks=`` to each call.
        """
        async with self._core.transactions.hooks_around(tx) as hooks:
            yield hooks

    @asynccontextmanager
    async def savepoint(
        self, tx: TxT, *, hooks: TransactionHooks | None = None
    ) -> AsyncIterator[TxT]:
        """A savepoint inside ``tx`` that also covers its side effects: if the block raises, its
        writes are rolled back and its buffered notifications and events are dropped."""
        transactions = self._core.transactions
        async with transactions.savepoint(transactions.bound(tx, hooks)) as inner:
            yield inner.tx

    async def wait_published(self) -> None:
        """Wait until the notifications of every transaction committed so far are published."""
        await self._core.publishing.wait_published()

    async def close(self) -> None:
        """Wait for pending publishes, then close the notify adapter if the client made it. The
        adapters you passed in stay open: whoever created them closes them."""
        if self._closed:
            return
        self._closed = True
        await self.wait_published()
        if self._owns_notify:
            await self.notify.close()

    async def __aenter__(self) -> Client[TxT]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _chain_id(self, chain: Chain[Any] | str) -> str:
        """The id of ``chain`` (a chain or its id), checked with the adapter's id policy."""
        return check_id(
            self._ids, chain.id if isinstance(chain, Chain) else chain, argument="chain"
        )

    # -- creating chains -------------------------------------------------------------------------

    async def start_chain(
        self, job: J, *, tx: TxT | None = None, hooks: TransactionHooks | None = None
    ) -> Chain[J]:
        """Start a chain with ``job`` (an instance of an entry job type) inside ``tx``, or, without
        ``tx``, in a transaction of its own (one statement where the backend allows).

        Returns the new chain, or the existing one with ``deduplicated=True`` when ``job``'s
        deduplication matched. Nothing is written if validation fails.
        """
        # start_chains for one job, without its lists (a loop of these is the common enqueue)
        core = self._core
        creation = core.creation
        plans = creation.plan_starts((job,))
        if tx is None and hooks is None and not plans[0].blockers:
            created = await creation.start_alone(plans)
        else:
            created = await self._write(plans, tx, hooks)
        # a new chain's view from its plan, the caller's input and the stored row's times
        return creation.started((job,), plans, created, core.mapper.started)[0]

    async def start_chains(
        self, jobs: Sequence[J], *, tx: TxT | None = None, hooks: TransactionHooks | None = None
    ) -> list[Chain[J]]:
        """Start several chains in one batch (one round trip per stage where the backend allows);
        results in input order. Without ``tx`` the batch commits on its own, all or nothing, and
        what it announces (wake-ups, events) follows that commit."""
        core = self._core
        creation = core.creation
        plans = creation.plan_starts(jobs)
        if tx is None and hooks is None and not any(map(_BLOCKERS, plans)):
            # the state adapter's own short transaction: one statement where it can (and, where
            # the state and notify adapters can, the wake-ups in the same statement)
            created = await creation.start_alone(plans) if plans else []
        else:
            created = await self._write(plans, tx, hooks)
        # the new chains' views from their plans, the caller's inputs and the stored rows' times
        return creation.started(jobs, plans, created, core.mapper.started)

    def _write(
        self, plans: list[PlannedJob], tx: TxT | None, hooks: TransactionHooks | None
    ) -> Awaitable[list[CreatedJob]]:
        """Write planned chain starts in ``tx``, or, for starts waiting for blockers, in a
        transaction of the client's (the rows and their blocker links commit together)."""
        core = self._core
        if tx is not None:
            return core.creation.write(plans, None, core.transactions.bound(tx, hooks))
        if hooks is not None:
            raise UsageError("hooks= belongs to a transaction: pass its tx= too")
        return self._write_linked(plans)

    async def _write_linked(self, plans: list[PlannedJob]) -> list[CreatedJob]:
        core = self._core
        async with core.transactions.transaction() as linked:
            created = await core.creation.write(plans, None, linked)
        return created

    # -- workerless completion, cancellation ---------------------------------------------------

    @overload
    async def complete_chain(
        self,
        chain: Chain[Any] | str,
        job_type: type[WorkerlessCompletable[I, O, C]],
        result: Callable[[WorkerlessCompletion[TxT, I]], Awaitable[O | C]],
        *,
        tx: TxT,
        hooks: TransactionHooks | None = None,
    ) -> Chain[Any]: ...

    @overload
    async def complete_chain(
        self,
        chain: Chain[Any] | str,
        job_type: type[WorkerlessCompletable[I, O, C]],
        result: O | C,
        *,
        tx: TxT,
        hooks: TransactionHooks | None = None,
    ) -> Chain[Any]: ...

    async def complete_chain(
        self,
        chain: Chain[Any] | str,
        job_type: type[Any],
        result: Any,
        *,
        tx: TxT,
        hooks: TransactionHooks | None = None,
    ) -> Chain[Any]:
        """Complete or continue the chain's current job from outside any worker.

        ``job_type`` is the type the current job must have (else :class:`JobTypeMismatchError`).
        ``result`` is the output, a continuation job, or an async function of a
        :class:`WorkerlessCompletion` returning either. The job is locked like a worker would; a
        worker running it loses it (its completion is refused). Returns the chain re-read.
        """
        chain_id = self._chain_id(chain)
        core = self._core
        bound = core.transactions.bound(tx, hooks)
        stored = await self.state.get_chain(chain_id, lock=True, tx=tx)
        if stored is None:
            raise ChainNotFoundError(chain_id)
        current = stored.tail
        if current.is_closed:
            raise JobAlreadyCompletedError(current.id)
        if current.type_name != job_type.type_name:
            raise JobTypeMismatchError(job_type.type_name, current.type_name)
        restore = bound.hooks.checkpoint()
        try:
            if callable(result) and not isinstance(result, JobType):
                completion = WorkerlessCompletion(
                    client=self,
                    tx=tx,
                    hooks=bound.hooks,
                    job=core.to_job(current),
                    input=core.mapper.decode(current.type_name, current.input, "input"),
                )
                result = await result(completion)
            await core.finishing.finish(current, result, worker_id=None, bound=bound)
            if current.leased_by is not None:
                core.publishing.notify_buffer(bound.hooks).ownership_lost.add(current.id)
        except BaseException:
            restore()
            raise
        after = await self.state.get_chain(chain_id, tx=tx)
        assert after is not None
        return core.to_chain(after)

    async def cancel_chain(
        self, chain: Chain[Any] | str, *, tx: TxT, hooks: TransactionHooks | None = None
    ) -> Chain[Any]:
        """Close an open chain as *cancelled*. A running attempt is told and its completion refused;
        jobs waiting for this chain are released (and see it cancelled)."""
        chain_id = self._chain_id(chain)
        core = self._core
        bound = core.transactions.bound(tx, hooks)
        stored = await self.state.get_chain(chain_id, lock=True, tx=tx)
        if stored is None:
            raise ChainNotFoundError(chain_id)
        if stored.tail.is_closed:
            raise JobAlreadyCompletedError(stored.tail.id)
        result = await self.state.complete_job(
            stored.tail.id, outcome="cancelled", worker_id=None, tx=tx
        )
        core.finishing.after_close(result, worker_id=None, hooks=bound.hooks)
        if stored.tail.leased_by is not None:
            core.publishing.notify_buffer(bound.hooks).ownership_lost.add(stored.tail.id)
        return core.to_chain(
            StoredChain(
                root=stored.root if stored.root.id != result.job.id else result.job, tail=result.job
            )
        )

    # -- deletion and triggering ---------------------------------------------------------------

    async def delete_chains(
        self,
        chains: Sequence[Chain[Any] | str],
        *,
        cascade: bool = False,
        tx: TxT,
        hooks: TransactionHooks | None = None,
    ) -> list[Chain[Any]]:
        """Delete whole chains, all or nothing. Refuses with :class:`BlockerReferenceError` when a job
        outside the set waits for one of them; ``cascade=True`` also deletes the chains they wait for
        (transitively). Missing ids are skipped. Workers running a deleted job are told."""
        if isinstance(chains, (str, bytes)):
            raise UsageError("delete_chains takes a sequence of chains or chain ids, not one str")
        ids = check_ids(
            self._ids, (c.id if isinstance(c, Chain) else c for c in chains), argument="chains"
        )
        core = self._core
        bound = core.transactions.bound(tx, hooks)
        result = await self.state.delete_chains(ids, cascade=cascade, tx=tx)
        if result.references:
            raise BlockerReferenceError(result.references)
        notify = core.publishing.notify_buffer(bound.hooks)
        deleted_chains = in_creation_order(result.deleted)
        for deleted in deleted_chains:
            core.after_commit(bound.hooks, ChainDeleted(deleted.root.id, deleted.root.type_name))
            if deleted.tail.leased_by is not None and not deleted.tail.is_closed:
                notify.ownership_lost.add(deleted.tail.id)
        return [core.to_chain(d) for d in deleted_chains]

    async def trigger_jobs(
        self, job_ids: Sequence[str], *, tx: TxT, hooks: TransactionHooks | None = None
    ) -> list[Job]:
        """Make scheduled jobs ready now (also "retry now" for a job waiting in backoff). All or nothing:
        :class:`JobNotFoundError` / :class:`JobNotTriggerableError` and nothing changes."""
        job_ids = check_ids(self._ids, job_ids, argument="job_ids")
        core = self._core
        bound = core.transactions.bound(tx, hooks)
        result = await self.state.trigger_jobs(job_ids, tx=tx)
        if result.not_found:
            raise JobNotFoundError(result.not_found[0])
        if result.not_triggerable:
            job_id, status = result.not_triggerable[0]
            raise JobNotTriggerableError(job_id, status)
        notify = core.publishing.notify_buffer(bound.hooks)
        for job in result.triggered:
            notify.ready[job.type_name] += 1
            core.after_commit(bound.hooks, JobTriggered(core.job_info(job)))
        return [core.to_job(j) for j in result.triggered]

    # -- reading -------------------------------------------------------------------------------

    @overload
    async def get_chain(
        self, chain_id: str, job_type: type[JT], *, tx: TxT | None = None
    ) -> Chain[JT] | None: ...

    @overload
    async def get_chain(
        self, chain_id: str, job_type: None = None, *, tx: TxT | None = None
    ) -> Chain[Any] | None: ...

    async def get_chain(
        self, chain_id: str, job_type: type[JT] | None = None, *, tx: TxT | None = None
    ) -> Chain[Any] | None:
        """The chain, or ``None``. With ``job_type``, a chain of another type raises
        :class:`JobTypeMismatchError`."""
        check_id(self._ids, chain_id, argument="chain_id")
        stored = await self.state.get_chain(chain_id, tx=tx)
        if stored is None:
            return None
        if job_type is not None and stored.root.type_name != job_type.type_name:
            raise JobTypeMismatchError(job_type.type_name, stored.root.type_name)
        return self._core.to_chain(stored)

    async def get_job(
        self, job_id: str, job_type: AnyJobType | None = None, *, tx: TxT | None = None
    ) -> Job | None:
        check_id(self._ids, job_id, argument="job_id")
        stored = await self.state.get_job(job_id, tx=tx)
        if stored is None:
            return None
        if job_type is not None and stored.type_name != job_type.type_name:
            raise JobTypeMismatchError(job_type.type_name, stored.type_name)
        return self._core.to_job(stored)

    async def get_job_blockers(self, job_id: str, *, tx: TxT | None = None) -> list[Chain[Any]]:
        """The chains a job waits (or waited) for, in slot order."""
        check_id(self._ids, job_id, argument="job_id")
        return list(map(self._core.to_chain, await self.state.get_job_blockers(job_id, tx=tx)))

    async def list_chains(
        self,
        *,
        type_names: TypeNames | None = None,
        status: ChainStatus | None = None,
        chain_ids: Sequence[str] | None = None,
        job_ids: Sequence[str] | None = None,
        root_only: bool = False,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        deduplication_keys: Sequence[str] | None = None,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[Chain[Any]]:
        where = ChainFilter(
            _type_names(type_names, "type_names"),
            status,
            chain_ids,
            job_ids,
            root_only,
            created_from,
            created_to,
            deduplication_keys,
        )
        where.check_ids(self._ids)
        check_page("chains", order=order, limit=limit, cursor=cursor, ids=self._ids)
        page = await self.state.list_chains(
            where,
            order=order,
            cursor=cursor,
            limit=limit,
            tx=tx,
        )
        return Page(list(map(self._core.to_chain, page.items)), page.next_cursor)

    async def list_jobs(
        self,
        *,
        type_names: TypeNames | None = None,
        statuses: Sequence[JobStatus] | None = None,
        job_ids: Sequence[str] | None = None,
        chain_ids: Sequence[str] | None = None,
        chain_type_names: TypeNames | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[Job]:
        where = JobFilter(
            _type_names(type_names, "type_names"),
            statuses,
            job_ids,
            chain_ids,
            _type_names(chain_type_names, "chain_type_names"),
            created_from,
            created_to,
        )
        where.check_ids(self._ids)
        check_page("jobs", order=order, limit=limit, cursor=cursor, ids=self._ids)
        page = await self.state.list_jobs(
            where,
            order=order,
            cursor=cursor,
            limit=limit,
            tx=tx,
        )
        return Page(list(map(self._core.to_job, page.items)), page.next_cursor)

    async def list_chain_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "asc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[Job]:
        check_id(self._ids, chain_id, argument="chain_id")
        check_page("chain_jobs", order=order, limit=limit, cursor=cursor, ids=self._ids)
        page = await self.state.list_chain_jobs(
            chain_id, order=order, cursor=cursor, limit=limit, tx=tx
        )
        return Page(list(map(self._core.to_job, page.items)), page.next_cursor)

    async def list_blocked_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[Job]:
        """Jobs that wait (or waited) for the chain ``chain_id``."""
        check_id(self._ids, chain_id, argument="chain_id")
        check_page("blocked_jobs", order=order, limit=limit, cursor=cursor, ids=self._ids)
        page = await self.state.list_blocked_jobs(
            chain_id, order=order, cursor=cursor, limit=limit, tx=tx
        )
        return Page(list(map(self._core.to_job, page.items)), page.next_cursor)

    async def get_queue_stats(
        self, type_names: TypeNames | None = None, *, tx: TxT | None = None
    ) -> list[QueueStats]:
        """Queue health in one cheap read: per job type, how many open jobs are ready (with the
        age of the oldest), scheduled, blocked, running, and running on an expired lease that no
        reaper has put back yet. Without ``type_names``, every type with open jobs; with them,
        exactly those types (zeros for a type without open jobs). Sorted by type name."""
        names = _type_names(type_names, "type_names")
        return await self.state.get_queue_stats(names, tx=tx)

    async def get_job_activity(
        self,
        *,
        window: Duration = timedelta(hours=1),
        buckets: int = 60,
        tx: TxT | None = None,
    ) -> JobActivity:
        """Jobs by type and status (open ones, and those closed in the last ``window``), the jobs
        completed and failed in each of ``buckets`` equal slices of the window, and the workers
        that closed jobs in it (see :class:`~queuert.state.JobActivity`). ``window`` takes a
        ``timedelta`` or seconds; ``buckets`` is from 1 to 1440."""
        span = to_timedelta(window, name="window", positive=True)
        if type(buckets) is not int or not 1 <= buckets <= MAX_ACTIVITY_BUCKETS:
            raise UsageError(
                f"buckets must be an int from 1 to {MAX_ACTIVITY_BUCKETS}, not {buckets!r}"
            )
        return await self.state.get_job_activity(window=span, buckets=buckets, tx=tx)

    # -- waiting ------------------------------------------------------------------------------

    @overload
    async def wait_for_chain(
        self,
        chain: Chain[WithChainResult[R]],
        *,
        timeout: Duration,
        poll_interval: Duration = _WAIT_POLL,
    ) -> R: ...

    @overload
    async def wait_for_chain(
        self,
        chain: Chain[WithOutput[O]],
        *,
        timeout: Duration,
        poll_interval: Duration = _WAIT_POLL,
    ) -> O: ...

    @overload
    async def wait_for_chain(
        self,
        chain: str,
        job_type: type[WithChainResult[R]],
        *,
        timeout: Duration,
        poll_interval: Duration = _WAIT_POLL,
    ) -> R: ...

    @overload
    async def wait_for_chain(
        self,
        chain: str,
        job_type: type[WithOutput[O]],
        *,
        timeout: Duration,
        poll_interval: Duration = _WAIT_POLL,
    ) -> O: ...

    async def wait_for_chain(
        self,
        chain: Chain[Any] | str,
        job_type: type[Any] | None = None,
        *,
        timeout: Duration,
        poll_interval: Duration = _WAIT_POLL,
    ) -> Any:
        """Wait until the chain closes and return its output.

        Wakes on the chain-closed notification and re-reads the chain every ``poll_interval`` (default:
        one second) in case a notification does not arrive (another process closed the chain and
        there is no networked notify adapter, or a notification was lost). ``timeout`` and
        ``poll_interval`` take a ``timedelta`` or seconds.
        Raises :class:`WaitChainTimeoutError` after ``timeout``, :class:`ChainNotFoundError`,
        :class:`JobTypeMismatchError`, and :class:`ChainFailedError` / :class:`ChainCancelledError`
        if it closed without an output.
        """
        chain_id, expected = self._wait_target(chain, job_type)
        timeout_td = to_timedelta(timeout, name="timeout")
        poll = to_timedelta(poll_interval, name="poll_interval", positive=True).total_seconds()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_td.total_seconds()
        woken = asyncio.Event()
        unsubscribe = None
        try:
            unsubscribe = await self.notify.listen_chain_closed(chain_id, woken.set)
        except Exception as exc:
            self._core.emit(NotifyAdapterError(operation="listen_chain_closed", error=repr(exc)))
        try:
            while True:
                closed, output = self._closed_output(
                    await self.state.get_chain(chain_id), chain_id, expected
                )
                if closed:
                    return output
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise WaitChainTimeoutError(chain_id, timeout_td)
                woken.clear()
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(poll, remaining))
        finally:
            if unsubscribe is not None:
                try:
                    await unsubscribe()
                except Exception as exc:
                    self._core.emit(NotifyAdapterError(operation="unsubscribe", error=repr(exc)))

    def _wait_target(
        self, chain: Chain[Any] | str, job_type: type[Any] | None
    ) -> tuple[str, str | None]:
        """The id of the chain a wait is for, and the type its first job must have (if known)."""
        expected: str | None
        if isinstance(chain, Chain):
            chain_id, expected = chain.id, chain.type_name
        else:
            chain_id, expected = chain, job_type.type_name if job_type is not None else None
        check_id(self._ids, chain_id, argument="chain")
        return chain_id, expected

    def _closed_output(
        self, stored: StoredChain | None, chain_id: str, expected: str | None
    ) -> tuple[bool, Any]:
        """Whether the chain a wait reads as ``stored`` has closed, and then its output (raising
        what a closed chain without one raises); a missing chain or one of another type raises."""
        if stored is None:
            raise ChainNotFoundError(chain_id)
        if expected is not None and stored.root.type_name != expected:
            raise JobTypeMismatchError(expected, stored.root.type_name)
        if stored.tail.closes_chain:
            return True, self._core.to_chain(stored).output
        return False, None


_BLOCKERS = itemgetter(1)
"""A :class:`~queuert._chain_creation.PlannedJob`'s ``blockers`` (in C: no call per plan)."""


def _type_names(values: TypeNames | None, argument: str) -> list[str] | None:
    """Type names for a filter, from names or job type classes (a single one is refused: it would
    read as its characters)."""
    if values is None:
        return None
    if isinstance(values, (str, bytes, type)):
        raise UsageError(
            f"{argument} takes a sequence of job type names or classes, not {values!r}"
        )
    return [job_type_name(value, argument=argument) for value in values]


@dataclass
class WorkerlessCompletion(TxContext[TxT], Generic[TxT, I]):
    """What a workerless completion callback sees: the current job, its decoded input and the tx."""

    job: Job = None  # type: ignore[assignment]
    input: I = None  # type: ignore[assignment]


class _TxOf(Generic[TxT]):
    """The ``tx`` of a bound transaction scope (what :meth:`Client.transaction` yields)."""

    __slots__ = ("_scope",)

    def __init__(self, scope: TransactionScope[TxT]) -> None:
        self._scope = scope

    async def __aenter__(self) -> TxT:
        return (await self._scope.__aenter__()).tx

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        return await self._scope.__aexit__(exc_type, exc, tb)
