"""The client: start chains inside your transaction, read them, wait for them, manage them.

Every mutating call runs inside the caller's transaction (``tx=``) so it commits or rolls back with the
caller's own writes. Side effects (notifications, observability events) are buffered in transaction
hooks and flushed only after the commit (see :mod:`queuert.hooks`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar, overload

from queuert._fastinit import from_fields
from queuert._tasks import drain
from queuert.codec import Codec, CodecError, DefaultCodec
from queuert.errors import (
    BlockerReferenceError,
    ChainNotFoundError,
    InvalidJobIdError,
    JobAlreadyCompletedError,
    JobNotFoundError,
    JobNotTriggerableError,
    JobTypeMismatchError,
    JobTypeValidationError,
    NotJsonError,
    TransactionHooksRequiredError,
    UsageError,
    WaitChainTimeoutError,
)
from queuert.hooks import TransactionHooks
from queuert.ids import is_uuid, uuid7
from queuert.in_memory.notify import NoopNotifyAdapter
from queuert.job_types import EntryJobType, JobType, JobTypeRegistry
from queuert.json import JsonValue
from queuert.models import Chain, Job
from queuert.notify import NotifyAdapter
from queuert.observability import (
    ChainClosed,
    ChainCreated,
    ChainDeduplicated,
    ChainDeleted,
    Event,
    JobBlocked,
    JobCompleted,
    JobCreated,
    JobInfo,
    JobTriggered,
    JobUnblocked,
    LoggingObservability,
    NotifyAdapterError,
    ObservabilityAdapter,
)
from queuert.state import (
    ChainFilter,
    ChainStatus,
    CompleteResult,
    JobFilter,
    JobStatus,
    NewJob,
    Order,
    Outcome,
    Page,
    StateAdapter,
    StoredChain,
    StoredJob,
)

__all__ = ["Client", "TxContext"]

logger = logging.getLogger("queuert.client")

TxT = TypeVar("TxT")
J = TypeVar("J", bound=EntryJobType[Any, Any, Any, Any, Any])
JT = TypeVar("JT", bound=JobType[Any, Any, Any, Any, Any])
I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741
C = TypeVar("C")
R = TypeVar("R")

AnyJobType = type[JobType[Any, Any, Any, Any, Any]]
_DECODE: Any = object()
"""Sentinel: decode the stored input."""


# -- buffered side effects ---------------------------------------------------------------------


class _NotifyBuffer:
    """Notifications to publish after commit."""

    def __init__(self, client: Client[Any]) -> None:
        self._client = client
        self.ready: Counter[str] = Counter()
        self.scheduled: set[str] = set()
        self.closed_chains: set[str] = set()
        self.ownership_lost: set[str] = set()

    async def flush(self) -> None:
        ready, scheduled = dict(self.ready), set(self.scheduled)
        closed, lost = set(self.closed_chains), set(self.ownership_lost)
        self.discard()
        if ready or scheduled or closed or lost:
            self._client._publisher.add(ready, scheduled, closed, lost)

    def discard(self) -> None:
        self.ready.clear()
        self.scheduled.clear()
        self.closed_chains.clear()
        self.ownership_lost.clear()

    def snapshot(self) -> object:
        return (
            Counter(self.ready),
            set(self.scheduled),
            set(self.closed_chains),
            set(self.ownership_lost),
        )

    def restore(self, snapshot: object) -> None:
        assert isinstance(snapshot, tuple)
        self.ready = Counter(snapshot[0])
        self.scheduled = set(snapshot[1])
        self.closed_chains = set(snapshot[2])
        self.ownership_lost = set(snapshot[3])


class _EventBuffer:
    """Observability events to emit after commit, in order."""

    def __init__(self, client: Client[Any]) -> None:
        self._client = client
        self.events: list[Event] = []

    async def flush(self) -> None:
        events, self.events = self.events, []
        emit = self._client.emit
        for event in events:
            emit(event)

    def discard(self) -> None:
        self.events.clear()

    def snapshot(self) -> object:
        return len(self.events)

    def restore(self, snapshot: object) -> None:
        assert isinstance(snapshot, int)
        del self.events[snapshot:]


class _Publisher:
    """Publishes notifications in one background task, merging whatever accumulates while it is busy
    (wake-up counts add up, ids are deduplicated), so a burst of commits costs a few publishes."""

    def __init__(self, client: Client[Any]) -> None:
        self._client = client
        self._ready: Counter[str] = Counter()
        self._scheduled: set[str] = set()
        self._closed: set[str] = set()
        self._lost: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def add(
        self, ready: dict[str, int], scheduled: set[str], closed: set[str], lost: set[str]
    ) -> None:
        self._ready.update(ready)
        self._scheduled |= scheduled
        self._closed |= closed
        self._lost |= lost
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while self._ready or self._scheduled or self._closed or self._lost:
            ready, scheduled, closed, lost = (
                dict(self._ready),
                self._scheduled,
                self._closed,
                self._lost,
            )
            self._ready, self._scheduled, self._closed, self._lost = Counter(), set(), set(), set()
            await self._client._publish(ready, scheduled, closed, lost)

    async def drain(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)


_NOTIFY_KEY = "queuert.notify"
_EVENTS_KEY = "queuert.events"


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

    ``Client(state, job_types=[...], notify=..., observability=..., codec=...)``. ``job_types`` lists
    the job type classes this client may create (their continuation targets and blocker types are
    added automatically). ``notify`` defaults to no notifications (workers then poll);
    ``observability`` defaults to structured logging; ``codec`` to :class:`~queuert.codec.DefaultCodec`.
    ``close()`` waits for pending publishes (the adapters are closed by whoever created them).
    """

    def __init__(
        self,
        state: StateAdapter[TxT],
        *,
        job_types: Sequence[AnyJobType],
        notify: NotifyAdapter | None = None,
        observability: ObservabilityAdapter | None = None,
        codec: Codec | None = None,
        generate_id: Callable[[], str] = uuid7,
        validate_id: Callable[[str], bool] | None = is_uuid,
    ) -> None:
        self.state = state
        self.notify: NotifyAdapter = notify if notify is not None else NoopNotifyAdapter()
        self.observability: ObservabilityAdapter = (
            observability if observability is not None else LoggingObservability()
        )
        self.codec: Codec = codec if codec is not None else DefaultCodec()
        self.registry = JobTypeRegistry(job_types)
        self._generate_id = generate_id
        self._validate_id = validate_id
        self._check_generated = validate_id is not None and generate_id is not uuid7
        self._bound_hooks: dict[int, list[TransactionHooks]] = {}
        self._publisher = _Publisher(self)
        self._flushes: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- transactions and hooks -----------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[TxT]:
        """Open a transaction of the state adapter with hooks bound to it; side effects are
        flushed after the commit and dropped on rollback."""
        hooks = TransactionHooks()
        try:
            async with self.state.transaction() as tx:
                with self._bind(tx, hooks):
                    yield tx
        except BaseException:
            hooks.discard()
            raise
        await hooks.flush()

    @asynccontextmanager
    async def hooks(self, tx: Any = None) -> AsyncIterator[TransactionHooks]:
        """Transaction hooks for your own transaction.

        Open it *around* the transaction: the hooks flush when this block exits normally (after your
        commit) and are dropped when it raises. With ``tx`` (e.g. the asyncpg connection you will run
        the transaction on) calls given that ``tx`` find the hooks by themselves; otherwise pass
        ``hooks=`` to each call.
        """
        hooks = TransactionHooks()
        try:
            if tx is None:
                yield hooks
            else:
                with self._bind(tx, hooks):
                    yield hooks
        except BaseException:
            hooks.discard()
            raise
        await hooks.flush()

    @asynccontextmanager
    async def savepoint(
        self, tx: TxT, *, hooks: TransactionHooks | None = None
    ) -> AsyncIterator[TxT]:
        """A savepoint inside ``tx`` that also covers its side effects: if the block raises, its
        writes are rolled back and its buffered notifications and events are dropped."""
        hooks = self._hooks_for(tx, hooks)
        restore = hooks.checkpoint()
        try:
            async with self.state.savepoint(tx) as inner:
                with self._bind(inner, hooks):
                    yield inner
        except BaseException:
            restore()
            raise

    @contextmanager
    def _bind(self, tx: Any, hooks: TransactionHooks) -> Iterator[None]:
        stack = self._bound_hooks.setdefault(id(tx), [])
        stack.append(hooks)
        try:
            yield
        finally:
            stack.pop()
            if not stack:
                del self._bound_hooks[id(tx)]

    def _hooks_for(self, tx: Any, hooks: TransactionHooks | None) -> TransactionHooks:
        if tx is None:
            raise UsageError("this call changes state and needs the transaction: pass tx=...")
        if hooks is not None:
            return hooks
        stack = self._bound_hooks.get(id(tx))
        if stack:
            return stack[-1]
        attached = self._attach_commit_hooks(tx)
        if attached is not None:
            return attached
        raise TransactionHooksRequiredError()

    def _attach_commit_hooks(self, tx: Any) -> TransactionHooks | None:
        """Hooks flushed by the transaction's own commit event, where the adapter offers one."""
        attach = getattr(self.state, "attach_commit_hooks", None)
        if attach is None:
            return None
        hooks = TransactionHooks()
        key = id(tx)

        def on_commit() -> None:
            self._unbind_attached(key, hooks)
            self._flush_later(hooks)

        def on_rollback() -> None:
            self._unbind_attached(key, hooks)
            hooks.discard()

        if not attach(tx, on_commit, on_rollback):
            return None
        self._bound_hooks.setdefault(key, []).append(hooks)
        return hooks

    def _unbind_attached(self, key: int, hooks: TransactionHooks) -> None:
        stack = self._bound_hooks.get(key)
        if stack and hooks in stack:
            stack.remove(hooks)
            if not stack:
                del self._bound_hooks[key]

    def _flush_later(self, hooks: TransactionHooks) -> None:
        """Flush hooks from a synchronous commit event: in a task the client owns (awaited by
        :meth:`wait_published` and :meth:`close`)."""
        task = asyncio.ensure_future(hooks.flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    def _after_commit(self, hooks: TransactionHooks, event: Event) -> None:
        self._event_buffer(hooks).events.append(event)

    def _event_buffer(self, hooks: TransactionHooks) -> _EventBuffer:
        return hooks.get(_EVENTS_KEY, lambda: _EventBuffer(self))

    def _notify_buffer(self, hooks: TransactionHooks) -> _NotifyBuffer:
        return hooks.get(_NOTIFY_KEY, lambda: _NotifyBuffer(self))

    def emit(self, event: Event) -> None:
        try:
            self.observability.emit(event)
        except Exception:
            logger.exception("observability adapter failed", extra={"queuert_event": event.name})

    # -- background publishing ------------------------------------------------------------------

    def publish_later(
        self, ready: dict[str, int], scheduled: set[str], closed: set[str], lost: set[str]
    ) -> None:
        """Queue notifications for the background publisher (used after a commit)."""
        self._publisher.add(ready, scheduled, closed, lost)

    async def _publish(
        self, ready: dict[str, int], scheduled: set[str], closed: set[str], lost: set[str]
    ) -> None:
        async def call(operation: str, coro: Awaitable[Any]) -> None:
            try:
                await coro
            except Exception as exc:
                self.emit(NotifyAdapterError(operation=operation, error=repr(exc)))

        for type_name, count in ready.items():
            await call("provide_wake_hint", self.notify.provide_wake_hint(type_name, count))
        for type_name in sorted(set(ready) | scheduled):
            await call("notify_job_scheduled", self.notify.notify_job_scheduled(type_name))
        for chain_id in closed:
            await call("notify_chain_closed", self.notify.notify_chain_closed(chain_id))
        for job_id in lost:
            await call("notify_job_ownership_lost", self.notify.notify_job_ownership_lost(job_id))

    async def wait_published(self) -> None:
        """Wait until the notifications of every transaction committed so far are published."""
        await drain(self._flushes)
        await self._publisher.drain()

    async def close(self) -> None:
        """Wait for pending publishes. The adapters stay open: whoever created them closes them."""
        if self._closed:
            return
        self._closed = True
        await self.wait_published()

    async def __aenter__(self) -> Client[TxT]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- conversions ----------------------------------------------------------------------------

    def _decode(self, type_name: str, data: JsonValue, which: str) -> Any:
        if data is None:
            return None
        jt = self.registry.get(type_name)
        if jt is None:
            return data
        spec = jt.spec()
        tp = spec.input_type if which == "input" else spec.output_type
        try:
            return self.codec.decode(tp, data)
        except CodecError as exc:
            raise JobTypeValidationError(
                "invalid_input" if which == "input" else "invalid_output",
                type_name,
                f"stored {which} does not decode: {exc}",
            ) from exc

    def to_job(self, stored: StoredJob, *, input: Any = _DECODE) -> Job:
        """The public view of a stored job (``input`` given: already decoded, used as is)."""
        type_name = stored.type_name
        output = stored.output
        # the fields as one dict (Job's declaration order): cheaper than 18 keyword arguments
        return from_fields(
            Job,
            {
                "id": stored.id,
                "type_name": type_name,
                "chain_id": stored.chain_id,
                "chain_type_name": stored.chain_type_name,
                "status": stored.status,
                "input": self._decode(type_name, stored.input, "input")
                if input is _DECODE
                else input,
                "output": None if output is None else self._decode(type_name, output, "output"),
                "attempt": stored.attempt,
                "created_at": stored.created_at,
                "scheduled_at": stored.scheduled_at,
                "completed_at": stored.completed_at,
                "completed_by": stored.completed_by,
                "succeeded_by_job_id": stored.succeeded_by_job_id,
                "last_attempt_at": stored.last_attempt_at,
                "last_attempt_error": stored.last_attempt_error,
                "leased_by": stored.leased_by,
                "leased_until": stored.leased_until,
                "deduplication_key": stored.deduplication_key,
            },
        )

    def to_chain(
        self, stored: StoredChain, *, deduplicated: bool = False, input: Any = _DECODE
    ) -> Chain[Any]:
        return self._chain(stored.root, stored.tail, deduplicated, input)

    def _chain(
        self, root_row: StoredJob, tail_row: StoredJob, deduplicated: bool, input: Any
    ) -> Chain[Any]:
        root = self.to_job(root_row, input=input)
        tail = root if tail_row.id == root_row.id else self.to_job(tail_row)
        closed = tail_row.closes_chain
        completed = closed and tail_row.outcome == "completed"
        return from_fields(
            Chain,
            {
                "id": root_row.id,
                "type_name": root_row.type_name,
                "status": "closed" if closed else "open",
                "outcome": tail_row.outcome if closed else None,
                "root": root,
                "tail": tail,
                "deduplicated": deduplicated,
                "_output": tail.output if completed else None,
            },
        )

    @staticmethod
    def job_info(job: StoredJob) -> JobInfo:
        return JobInfo(job.id, job.type_name, job.chain_id, job.chain_type_name, job.attempt)

    # -- creating chains -------------------------------------------------------------------------

    async def start_chain(
        self, job: J, *, tx: TxT, hooks: TransactionHooks | None = None
    ) -> Chain[J]:
        """Start a chain with ``job`` (an instance of an entry job type) inside ``tx``.

        Returns the new chain, or the existing one with ``deduplicated=True`` when ``job``'s
        deduplication matched. Nothing is written if validation fails.
        """
        (chain,) = await self.start_chains([job], tx=tx, hooks=hooks)
        return chain

    async def start_chains(
        self, jobs: Sequence[J], *, tx: TxT, hooks: TransactionHooks | None = None
    ) -> list[Chain[J]]:
        """Start several chains in one batch (one round trip per stage where the backend allows);
        results in input order."""
        hooks = self._hooks_for(tx, hooks)
        for job in jobs:
            if not isinstance(job, JobType):
                raise UsageError(
                    f"start_chain takes a job (an instance of a job type), not {job!r}"
                )
            if not type(job).entry:
                raise JobTypeValidationError(
                    "not_entry_point", type(job).type_name, "only entry job types can start a chain"
                )
        created = await self._create(list(jobs), continuation_of=None, tx=tx, hooks=hooks)
        return [
            # a new chain holds the input it was given
            self._chain(row, row, dedup, _DECODE if dedup else job.input)
            for job, (row, dedup) in zip(jobs, created, strict=True)
        ]

    def _new_id(self, job: JobType[Any, Any, Any, Any, Any]) -> str:
        if job.id is not None:
            if not isinstance(job.id, str) or (
                self._validate_id is not None and not self._validate_id(job.id)
            ):
                raise InvalidJobIdError(job.id, "caller")
            return job.id
        new_id = self._generate_id()
        if self._check_generated and not self._validate_id(new_id):  # type: ignore[misc]
            raise InvalidJobIdError(new_id, "generator")
        return new_id

    def _encode_input(self, job: JobType[Any, Any, Any, Any, Any]) -> JsonValue:
        jt = type(job)
        self.registry.check_registered(jt)
        try:
            return self.codec.encode(jt.spec().input_type, job.input)
        except NotJsonError:
            raise
        except CodecError as exc:
            raise JobTypeValidationError("invalid_input", jt.type_name, str(exc)) from exc

    def _check_blockers(self, job: JobType[Any, Any, Any, Any, Any]) -> list[str]:
        jt = type(job)
        slots = jt.spec().blockers
        chains = list(job.blockers)
        if not slots.declared:
            if chains:
                raise JobTypeValidationError(
                    "invalid_blockers", jt.type_name, "this type declares no blockers"
                )
            return []
        for chain in chains:
            if not isinstance(chain, Chain):
                raise JobTypeValidationError(
                    "invalid_blockers",
                    jt.type_name,
                    f"blockers must be Chain objects, got {chain!r}",
                )
        if len(chains) < len(slots.fixed) or (
            slots.rest is None and len(chains) != len(slots.fixed)
        ):
            expected = f"{len(slots.fixed)}{' or more' if slots.rest is not None else ''}"
            raise JobTypeValidationError(
                "invalid_blockers",
                jt.type_name,
                f"expected {expected} blocker chains, got {len(chains)}",
            )
        for index, chain in enumerate(chains):
            allowed = slots.fixed[index] if index < len(slots.fixed) else slots.rest or ()
            if chain.type_name not in {a.type_name for a in allowed}:
                names = " | ".join(a.type_name for a in allowed)
                raise JobTypeValidationError(
                    "invalid_blockers",
                    jt.type_name,
                    f"blocker {index} must be a chain of {names}, got {chain.type_name!r}",
                )
        return [chain.id for chain in chains]

    async def _create(
        self,
        jobs: list[JobType[Any, Any, Any, Any, Any]],
        *,
        continuation_of: StoredJob | None,
        tx: TxT,
        hooks: TransactionHooks,
    ) -> list[tuple[StoredJob, bool]]:
        """Validate, then create jobs and their blocker links. All validation happens before any write."""
        return await self._insert(self._plan(jobs, continuation_of), continuation_of, tx, hooks)

    def _plan(
        self, jobs: list[JobType[Any, Any, Any, Any, Any]], continuation_of: StoredJob | None
    ) -> list[tuple[NewJob, list[str]]]:
        """Validate jobs to create and turn them into rows and blocker lists (no writes)."""
        new_jobs: list[NewJob] = []
        blockers: list[list[str]] = []
        for job in jobs:
            jt = type(job)
            payload = self._encode_input(job)
            blockers.append(self._check_blockers(job))
            if continuation_of is None:
                new_jobs.append(
                    NewJob(
                        id=self._new_id(job),
                        type_name=jt.type_name,
                        chain_type_name=jt.type_name,
                        input=payload,
                        schedule=job.schedule,
                        deduplication=job.deduplication,
                        fresh_id=job.id is None and self._generate_id is uuid7,
                    )
                )
            else:
                if job.deduplication is not None:
                    raise UsageError("deduplication applies to chain starts, not to continuations")
                new_jobs.append(
                    NewJob(
                        id=self._new_id(job),
                        type_name=jt.type_name,
                        chain_type_name=continuation_of.chain_type_name,
                        input=payload,
                        chain_id=continuation_of.chain_id,
                        chain_index=continuation_of.chain_index + 1,
                        schedule=job.schedule,
                    )
                )
        return list(zip(new_jobs, blockers, strict=True))

    async def _insert(
        self,
        plans: list[tuple[NewJob, list[str]]],
        continuation_of: StoredJob | None,
        tx: TxT,
        hooks: TransactionHooks,
    ) -> list[tuple[StoredJob, bool]]:
        if not plans:
            return []
        new_jobs = [plan[0] for plan in plans]
        blockers = [plan[1] for plan in plans]
        restore = hooks.checkpoint()
        try:
            created = await self.state.create_jobs(new_jobs, tx=tx)
            results = [(c.job, c.deduplicated) for c in created]
            links: list[tuple[str, Sequence[str]]] = [
                (row.id, blockers[i])
                for i, (row, dedup) in enumerate(results)
                if blockers[i] and not dedup
            ]
            if links:
                added = iter(await self.state.add_blockers(links, tx=tx))
                results = [
                    (next(added).job, dedup) if blockers[i] and not dedup else (row, dedup)
                    for i, (row, dedup) in enumerate(results)
                ]
            notify = self._notify_buffer(hooks)
            events = self._event_buffer(hooks).events
            ready = notify.ready
            for i, (row, dedup) in enumerate(results):
                if dedup:
                    if continuation_of is None:
                        events.append(
                            ChainDeduplicated(
                                row.chain_id, row.chain_type_name, row.deduplication_key
                            )
                        )
                    continue
                info = JobInfo(
                    row.id, row.type_name, row.chain_id, row.chain_type_name, row.attempt
                )
                if continuation_of is None:
                    events.append(ChainCreated(row.id, row.type_name))
                events.append(JobCreated(info, row.scheduled_at, row.blocked))
                if row.blocked:
                    events.append(JobBlocked(info, tuple(blockers[i])))
                elif row.status == "ready":
                    ready[row.type_name] += 1
                else:
                    notify.scheduled.add(row.type_name)
            return results
        except BaseException:
            restore()
            raise

    # -- finishing a job (shared by the worker and workerless completion) ------------------------

    def check_result(
        self, job: StoredJob, value: Any
    ) -> tuple[tuple[NewJob, list[str]] | None, JsonValue]:
        """Validate what a completion returned (a continuation job, fully, or the output); no writes.

        Returns the planned continuation row with its blockers, or the encoded output."""
        jt = self.registry.require(job.type_name)
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
            (plan,) = self._plan([value], job)
            return plan, None
        if not spec.can_complete:
            raise JobTypeValidationError(
                "invalid_output",
                job.type_name,
                "this type must continue the chain, it declares no output",
            )
        try:
            return None, self.codec.encode(spec.output_type, value)
        except NotJsonError:
            raise
        except CodecError as exc:
            raise JobTypeValidationError("invalid_output", job.type_name, str(exc)) from exc

    async def finish_job(
        self,
        job: StoredJob,
        value: Any,
        *,
        worker_id: str | None,
        tx: TxT,
        hooks: TransactionHooks,
    ) -> tuple[CompleteResult, StoredJob | None]:
        """Complete ``job`` with an output or continue it with the job in ``value`` (locked by caller)."""
        return await self.write_result(
            job, self.check_result(job, value), worker_id=worker_id, tx=tx, hooks=hooks
        )

    async def write_result(
        self,
        job: StoredJob,
        checked: tuple[tuple[NewJob, list[str]] | None, JsonValue],
        *,
        worker_id: str | None,
        tx: TxT,
        hooks: TransactionHooks,
        owner: str | None = None,
    ) -> tuple[CompleteResult, StoredJob | None]:
        """Write a result already validated by :meth:`check_result` (only if still leased by
        ``owner`` when given)."""
        continuation, output = checked
        successor: StoredJob | None = None
        if continuation is not None:
            ((successor, _),) = await self._insert([continuation], job, tx, hooks)
            result = await self.state.complete_job(
                job.id,
                outcome="completed",
                worker_id=worker_id,
                succeeded_by_job_id=successor.id,
                owner=owner,
                tx=tx,
            )
        else:
            result = await self.state.complete_job(
                job.id, outcome="completed", worker_id=worker_id, output=output, owner=owner, tx=tx
            )
        self.after_close(result, worker_id=worker_id, hooks=hooks)
        return result, successor

    def after_close(
        self, result: CompleteResult, *, worker_id: str | None, hooks: TransactionHooks
    ) -> None:
        """Buffer the notifications and events of a closed job (completed, continued, failed, cancelled)."""
        job = result.job
        now = job.completed_at or datetime.now(timezone.utc)
        if job.outcome == "completed":
            self._after_commit(
                hooks,
                JobCompleted(
                    self.job_info(job),
                    worker_id,
                    (now - job.created_at).total_seconds(),
                    continued_with=job.succeeded_by_job_id,
                ),
            )
        notify = self._notify_buffer(hooks)
        if job.closes_chain:
            notify.closed_chains.add(job.chain_id)
            assert job.outcome is not None
            self._after_commit(hooks, _chain_closed(job, job.outcome, now))
            for unblocked in result.unblocked:
                notify.ready[unblocked.type_name] += 1
                self._after_commit(hooks, JobUnblocked(self.job_info(unblocked), job.chain_id))

    # -- workerless completion, cancellation ---------------------------------------------------

    @overload
    async def complete_chain(
        self,
        chain: Chain[Any] | str,
        job_type: type[JobType[I, O, C, Any, Any]],
        result: Callable[[WorkerlessCompletion[TxT, I]], Awaitable[O | C]],
        *,
        tx: TxT,
        hooks: TransactionHooks | None = None,
    ) -> Chain[Any]: ...

    @overload
    async def complete_chain(
        self,
        chain: Chain[Any] | str,
        job_type: type[JobType[I, O, C, Any, Any]],
        result: O | C,
        *,
        tx: TxT,
        hooks: TransactionHooks | None = None,
    ) -> Chain[Any]: ...

    async def complete_chain(
        self,
        chain: Chain[Any] | str,
        job_type: type[JobType[Any, Any, Any, Any, Any]],
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
        hooks = self._hooks_for(tx, hooks)
        chain_id = chain.id if isinstance(chain, Chain) else chain
        stored = await self.state.get_chain(chain_id, lock=True, tx=tx)
        if stored is None:
            raise ChainNotFoundError(chain_id)
        current = stored.tail
        if current.is_closed:
            raise JobAlreadyCompletedError(current.id)
        if current.type_name != job_type.type_name:
            raise JobTypeMismatchError(job_type.type_name, current.type_name)
        restore = hooks.checkpoint()
        try:
            if callable(result) and not isinstance(result, JobType):
                completion = WorkerlessCompletion(
                    client=self,
                    tx=tx,
                    hooks=hooks,
                    job=self.to_job(current),
                    input=self._decode(current.type_name, current.input, "input"),
                )
                result = await result(completion)
            await self.finish_job(current, result, worker_id=None, tx=tx, hooks=hooks)
            if current.leased_by is not None:
                self._notify_buffer(hooks).ownership_lost.add(current.id)
        except BaseException:
            restore()
            raise
        after = await self.state.get_chain(chain_id, tx=tx)
        assert after is not None
        return self.to_chain(after)

    async def cancel_chain(
        self, chain: Chain[Any] | str, *, tx: TxT, hooks: TransactionHooks | None = None
    ) -> Chain[Any]:
        """Close an open chain as *cancelled*. A running attempt is told and its completion refused;
        jobs waiting for this chain are released (and see it cancelled)."""
        hooks = self._hooks_for(tx, hooks)
        chain_id = chain.id if isinstance(chain, Chain) else chain
        stored = await self.state.get_chain(chain_id, lock=True, tx=tx)
        if stored is None:
            raise ChainNotFoundError(chain_id)
        if stored.tail.is_closed:
            raise JobAlreadyCompletedError(stored.tail.id)
        result = await self.state.complete_job(
            stored.tail.id, outcome="cancelled", worker_id=None, tx=tx
        )
        self.after_close(result, worker_id=None, hooks=hooks)
        if stored.tail.leased_by is not None:
            self._notify_buffer(hooks).ownership_lost.add(stored.tail.id)
        return self.to_chain(
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
        hooks = self._hooks_for(tx, hooks)
        ids = [c.id if isinstance(c, Chain) else c for c in chains]
        result = await self.state.delete_chains(ids, cascade=cascade, tx=tx)
        if result.references:
            raise BlockerReferenceError(result.references)
        notify = self._notify_buffer(hooks)
        for deleted in result.deleted:
            self._after_commit(hooks, ChainDeleted(deleted.root.id, deleted.root.type_name))
            if deleted.tail.leased_by is not None and not deleted.tail.is_closed:
                notify.ownership_lost.add(deleted.tail.id)
        return [self.to_chain(d) for d in result.deleted]

    async def trigger_jobs(
        self, job_ids: Sequence[str], *, tx: TxT, hooks: TransactionHooks | None = None
    ) -> list[Job]:
        """Make scheduled jobs ready now (also "retry now" for a job waiting in backoff). All or nothing:
        :class:`JobNotFoundError` / :class:`JobNotTriggerableError` and nothing changes."""
        hooks = self._hooks_for(tx, hooks)
        result = await self.state.trigger_jobs(job_ids, tx=tx)
        if result.not_found:
            raise JobNotFoundError(result.not_found[0])
        if result.not_triggerable:
            job_id, status = result.not_triggerable[0]
            raise JobNotTriggerableError(job_id, status)
        notify = self._notify_buffer(hooks)
        for job in result.triggered:
            notify.ready[job.type_name] += 1
            self._after_commit(hooks, JobTriggered(self.job_info(job)))
        return [self.to_job(j) for j in result.triggered]

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
        stored = await self.state.get_chain(chain_id, tx=tx)
        if stored is None:
            return None
        if job_type is not None and stored.root.type_name != job_type.type_name:
            raise JobTypeMismatchError(job_type.type_name, stored.root.type_name)
        return self.to_chain(stored)

    async def get_job(
        self, job_id: str, job_type: AnyJobType | None = None, *, tx: TxT | None = None
    ) -> Job | None:
        stored = await self.state.get_job(job_id, tx=tx)
        if stored is None:
            return None
        if job_type is not None and stored.type_name != job_type.type_name:
            raise JobTypeMismatchError(job_type.type_name, stored.type_name)
        return self.to_job(stored)

    async def get_job_blockers(self, job_id: str, *, tx: TxT | None = None) -> list[Chain[Any]]:
        """The chains a job waits (or waited) for, in slot order."""
        return [self.to_chain(c) for c in await self.state.get_job_blockers(job_id, tx=tx)]

    async def list_chains(
        self,
        *,
        type_names: Sequence[str] | None = None,
        status: ChainStatus | None = None,
        chain_ids: Sequence[str] | None = None,
        job_ids: Sequence[str] | None = None,
        root_only: bool = False,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[Chain[Any]]:
        _check_limit(limit)
        page = await self.state.list_chains(
            ChainFilter(
                type_names, status, chain_ids, job_ids, root_only, created_from, created_to
            ),
            order=order,
            cursor=cursor,
            limit=limit,
            tx=tx,
        )
        return Page([self.to_chain(c) for c in page.items], page.next_cursor)

    async def list_jobs(
        self,
        *,
        type_names: Sequence[str] | None = None,
        statuses: Sequence[JobStatus] | None = None,
        job_ids: Sequence[str] | None = None,
        chain_ids: Sequence[str] | None = None,
        chain_type_names: Sequence[str] | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[Job]:
        _check_limit(limit)
        page = await self.state.list_jobs(
            JobFilter(
                type_names, statuses, job_ids, chain_ids, chain_type_names, created_from, created_to
            ),
            order=order,
            cursor=cursor,
            limit=limit,
            tx=tx,
        )
        return Page([self.to_job(j) for j in page.items], page.next_cursor)

    async def list_chain_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "asc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[Job]:
        _check_limit(limit)
        page = await self.state.list_chain_jobs(
            chain_id, order=order, cursor=cursor, limit=limit, tx=tx
        )
        return Page([self.to_job(j) for j in page.items], page.next_cursor)

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
        _check_limit(limit)
        page = await self.state.list_blocked_jobs(
            chain_id, order=order, cursor=cursor, limit=limit, tx=tx
        )
        return Page([self.to_job(j) for j in page.items], page.next_cursor)

    # -- waiting ------------------------------------------------------------------------------

    @overload
    async def wait_for_chain(
        self,
        chain: Chain[JobType[Any, Any, Any, Any, R]],
        *,
        timeout: float,
        poll_interval: float = 15.0,
    ) -> R: ...

    @overload
    async def wait_for_chain(
        self,
        chain: str,
        job_type: type[JobType[Any, Any, Any, Any, R]],
        *,
        timeout: float,
        poll_interval: float = 15.0,
    ) -> R: ...

    async def wait_for_chain(
        self,
        chain: Chain[Any] | str,
        job_type: AnyJobType | None = None,
        *,
        timeout: float,
        poll_interval: float = 15.0,
    ) -> Any:
        """Wait until the chain closes and return its output.

        Wakes on the chain-closed notification and polls every ``poll_interval`` seconds as a fallback.
        Raises :class:`WaitChainTimeoutError` after ``timeout`` seconds, :class:`ChainNotFoundError`,
        :class:`JobTypeMismatchError`, and :class:`ChainFailedError` / :class:`ChainCancelledError`
        if it closed without an output.
        """
        expected: str | None
        if isinstance(chain, Chain):
            chain_id, expected = chain.id, chain.type_name
        else:
            chain_id, expected = chain, job_type.type_name if job_type is not None else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        woken = asyncio.Event()
        unsubscribe = None
        try:
            unsubscribe = await self.notify.listen_chain_closed(chain_id, woken.set)
        except Exception as exc:
            self.emit(NotifyAdapterError(operation="listen_chain_closed", error=repr(exc)))
        try:
            while True:
                stored = await self.state.get_chain(chain_id)
                if stored is None:
                    raise ChainNotFoundError(chain_id)
                if expected is not None and stored.root.type_name != expected:
                    raise JobTypeMismatchError(expected, stored.root.type_name)
                if stored.tail.closes_chain:
                    return self.to_chain(stored).output
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise WaitChainTimeoutError(chain_id, timeout)
                woken.clear()
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(poll_interval, remaining))
        finally:
            if unsubscribe is not None:
                try:
                    await unsubscribe()
                except Exception as exc:
                    self.emit(NotifyAdapterError(operation="unsubscribe", error=repr(exc)))


@dataclass
class WorkerlessCompletion(TxContext[TxT], Generic[TxT, I]):
    """What a workerless completion callback sees: the current job, its decoded input and the tx."""

    job: Job = None  # type: ignore[assignment]
    input: I = None  # type: ignore[assignment]


def _chain_closed(job: StoredJob, outcome: Outcome, now: datetime) -> ChainClosed:
    """The chain's duration is known here only when the closing job is its first one."""
    duration = (now - job.created_at).total_seconds() if job.chain_index == 0 else None
    return ChainClosed(job.chain_id, job.chain_type_name, outcome, duration)


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1 or limit > 1000:
        raise UsageError("limit must be an int between 1 and 1000")
