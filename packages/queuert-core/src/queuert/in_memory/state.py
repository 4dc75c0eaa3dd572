"""The in-memory state adapter: the reference implementation of :class:`queuert.state.StateAdapter`.

Every other backend is compared with this one by ``queuert-conformance``, so it favours being obviously
right over being clever.

Layout
    Committed rows live in :class:`_Store`, together with indexes that are updated when a transaction
    commits: per-type ready ordering and lease expiry ordering, per-chain job lists, blocker links in
    both directions, the deduplication key map and the creation ordering used by the list queries.

Transactions
    Transactions are serialised by an :class:`asyncio.Lock` (one open transaction at a time, which also
    makes ``lock=True`` trivially honoured). A transaction works on a stack of overlay layers over the
    committed store: one layer for the transaction, one per open savepoint and one per running operation
    (so every operation is atomic, like one SQL statement). Reads inside the transaction look through the
    layers; reads without a transaction see the committed store only and never wait. Rolling back
    discards layers; committing folds the transaction's layer into the store and re-indexes exactly the
    rows it touched. Index lookups inside a transaction combine the committed index with the (small) set
    of rows the transaction touched.

Time
    Every timestamp is ``datetime.now(timezone.utc)`` taken once per operation.
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import heapq
import operator
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TypeAlias, TypeVar

from queuert.cursor import (
    decode_blocked_jobs_cursor,
    decode_chain_jobs_cursor,
    decode_chains_cursor,
    decode_jobs_cursor,
)
from queuert.errors import (
    BlockerReference,
    ChainNotFoundError,
    DuplicateJobIdError,
    JobAlreadyCompletedError,
    JobNotFoundError,
    JobTakenByAnotherWorkerError,
    StateAdapterClosedError,
    TransactionAbortedError,
    UsageError,
)
from queuert.ids import UUID_IDS
from queuert.json import JsonValue, copy_json
from queuert.limits import ConcurrencyLimit, take_within_limits
from queuert.paging import blocked_jobs_page, chain_jobs_page, chains_page, jobs_page
from queuert.schedule import Deduplication, Schedule, scheduled_at
from queuert.state import (
    STORED_FIELDS,
    BlockersAdded,
    Capabilities,
    ChainFilter,
    ClaimResult,
    CompleteResult,
    Completion,
    CreatedJob,
    DeleteResult,
    JobActivity,
    JobFilter,
    LeaseRenewal,
    MigrationResult,
    NewJob,
    Order,
    Outcome,
    Page,
    QueueStats,
    StatusCount,
    StoredChain,
    StoredJob,
    TriggerResult,
    WorkerActivity,
    activity_buckets,
    derive_status,
    inserted_job,
    queue_stats_in_order,
)

__all__ = ["InMemoryStateAdapter", "InMemoryTransaction"]

T = TypeVar("T")

_Link: TypeAlias = "tuple[str, str | None]"
"""One blocker link of a job: (blocker chain id, trace context of the link)."""
_Key: TypeAlias = "tuple[datetime, str]"
"""A sort key: (timestamp, job id)."""


# -- rows and indexes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """One stored job. Rows are immutable; a change writes a new row (so layers can share them)."""

    id: str
    type_name: str
    chain_id: str
    chain_type_name: str
    chain_index: int
    input: JsonValue
    output: JsonValue
    outcome: Outcome | None
    created_at: datetime
    scheduled_at: datetime
    completed_at: datetime | None
    completed_by: str | None
    succeeded_by_job_id: str | None
    attempt: int
    last_attempt_at: datetime | None
    last_attempt_error: str | None
    leased_by: str | None
    leased_until: datetime | None
    blocked: bool
    deduplication_key: str | None
    chain_trace_context: str | None
    trace_context: str | None
    priority: int
    limit_key: str | None

    @property
    def is_root(self) -> bool:
        return self.chain_index == 0 and self.id == self.chain_id

    @property
    def is_open(self) -> bool:
        return self.outcome is None

    @property
    def closes_chain(self) -> bool:
        return self.outcome is not None and self.succeeded_by_job_id is None

    @property
    def pending_key(self) -> _Key | None:
        """Key in the per-type "waiting to run" index: open, not blocked, not leased."""
        if self.outcome is None and self.leased_until is None and not self.blocked:
            return (self.scheduled_at, self.id)
        return None

    @property
    def lease_key(self) -> _Key | None:
        """Key in the per-type lease expiry index: open and leased."""
        if self.outcome is None and self.leased_until is not None:
            return (self.leased_until, self.id)
        return None

    @property
    def blocked_key(self) -> _Key | None:
        """Key in the per-type blocked index: open, blocked and not leased (status ``blocked``)."""
        if self.outcome is None and self.blocked and self.leased_until is None:
            return (self.created_at, self.id)
        return None

    @property
    def created_key(self) -> _Key:
        return (self.created_at, self.id)


class _SortedKeys:
    """A sorted list of unique keys (bisect based; inserts are O(n) memmoves, which is cheap)."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: list[_Key] = []

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: _Key) -> None:
        bisect.insort(self._keys, key)

    def remove(self, key: _Key) -> None:
        keys = self._keys
        i = bisect.bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            del keys[i]

    def iterate(self, *, reverse: bool = False, after: _Key | None = None) -> Iterator[_Key]:
        """Keys in order (descending with ``reverse``), strictly after ``after`` in that order."""
        keys = self._keys
        if not reverse:
            start = 0 if after is None else bisect.bisect_right(keys, after)
            for i in range(start, len(keys)):
                yield keys[i]
        else:
            end = len(keys) if after is None else bisect.bisect_left(keys, after)
            for i in range(end - 1, -1, -1):
                yield keys[i]


class _Store:
    """The committed state: rows, blocker links and the indexes over them."""

    def __init__(self) -> None:
        self.jobs: dict[str, _Row] = {}
        self.links: dict[str, tuple[_Link, ...]] = {}
        # indexes, maintained by _index/_unindex and apply()
        self.members: dict[str, dict[int, str]] = {}
        self.dependents: dict[str, set[str]] = {}
        self.dedup: dict[tuple[str, str], set[str]] = {}
        self.pending: dict[str, _SortedKeys] = {}
        self.leased: dict[str, _SortedKeys] = {}
        self.blocked: dict[str, _SortedKeys] = {}
        self.created = _SortedKeys()
        self.roots = _SortedKeys()

    def apply(self, layer: _Layer) -> None:
        """Fold a committed transaction's layer into the store, re-indexing the touched rows."""
        for job_id, row in layer.jobs.items():
            old = self.jobs.get(job_id)
            if old is not None:
                self._unindex(old)
            if row is None:
                self.jobs.pop(job_id, None)
            else:
                self.jobs[job_id] = row
                self._index(row)
        for job_id, links in layer.links.items():
            for chain_id, _ in self.links.get(job_id, ()):
                deps = self.dependents.get(chain_id)
                if deps is not None:
                    deps.discard(job_id)
                    if not deps:
                        del self.dependents[chain_id]
            if links:
                self.links[job_id] = links
                for chain_id, _ in links:
                    self.dependents.setdefault(chain_id, set()).add(job_id)
            else:
                self.links.pop(job_id, None)

    def _index(self, row: _Row) -> None:
        self.members.setdefault(row.chain_id, {})[row.chain_index] = row.id
        self.created.add(row.created_key)
        if row.is_root:
            self.roots.add(row.created_key)
            if row.deduplication_key is not None:
                key = (row.chain_type_name, row.deduplication_key)
                self.dedup.setdefault(key, set()).add(row.id)
        pending = row.pending_key
        if pending is not None:
            self.pending.setdefault(row.type_name, _SortedKeys()).add(pending)
        lease = row.lease_key
        if lease is not None:
            self.leased.setdefault(row.type_name, _SortedKeys()).add(lease)
        blocked = row.blocked_key
        if blocked is not None:
            self.blocked.setdefault(row.type_name, _SortedKeys()).add(blocked)

    def _unindex(self, row: _Row) -> None:
        members = self.members.get(row.chain_id)
        if members is not None and members.get(row.chain_index) == row.id:
            del members[row.chain_index]
            if not members:
                del self.members[row.chain_id]
        self.created.remove(row.created_key)
        if row.is_root:
            self.roots.remove(row.created_key)
            if row.deduplication_key is not None:
                key = (row.chain_type_name, row.deduplication_key)
                roots = self.dedup.get(key)
                if roots is not None:
                    roots.discard(row.id)
                    if not roots:
                        del self.dedup[key]
        pending = row.pending_key
        if pending is not None and row.type_name in self.pending:
            self.pending[row.type_name].remove(pending)
        lease = row.lease_key
        if lease is not None and row.type_name in self.leased:
            self.leased[row.type_name].remove(lease)
        blocked = row.blocked_key
        if blocked is not None and row.type_name in self.blocked:
            self.blocked[row.type_name].remove(blocked)


class _Layer:
    """Uncommitted writes of a transaction, a savepoint or one running operation.

    ``None`` marks a deleted row (or removed links).
    """

    __slots__ = ("jobs", "links", "poisoned")

    def __init__(self) -> None:
        self.jobs: dict[str, _Row | None] = {}
        self.links: dict[str, tuple[_Link, ...] | None] = {}
        self.poisoned = False

    def merge_into(self, parent: _Layer) -> None:
        parent.jobs.update(self.jobs)
        parent.links.update(self.links)


class _View:
    """The store as one reader sees it: the committed store under zero or more layers."""

    __slots__ = ("_layers", "_store")

    def __init__(self, store: _Store, layers: Sequence[_Layer]) -> None:
        self._store = store
        self._layers = layers

    # -- rows ---------------------------------------------------------------------------------------

    def job(self, job_id: str) -> _Row | None:
        for layer in reversed(self._layers):
            if job_id in layer.jobs:
                return layer.jobs[job_id]
        return self._store.jobs.get(job_id)

    def links(self, job_id: str) -> tuple[_Link, ...]:
        for layer in reversed(self._layers):
            if job_id in layer.links:
                return layer.links[job_id] or ()
        return self._store.links.get(job_id, ())

    def _dirty_jobs(self) -> dict[str, _Row | None]:
        """Rows touched by the layers (innermost version wins). Callers must not mutate it."""
        layers = self._layers
        if not layers:
            return {}
        if len(layers) == 1:
            return layers[0].jobs
        merged: dict[str, _Row | None] = {}
        for layer in layers:
            merged.update(layer.jobs)
        return merged

    def _dirty_links(self) -> dict[str, tuple[_Link, ...] | None]:
        layers = self._layers
        if not layers:
            return {}
        if len(layers) == 1:
            return layers[0].links
        merged: dict[str, tuple[_Link, ...] | None] = {}
        for layer in layers:
            merged.update(layer.links)
        return merged

    # -- writes (into the innermost layer) ------------------------------------------------------------

    def put(self, row: _Row) -> None:
        self._layers[-1].jobs[row.id] = row

    def delete(self, job_id: str) -> None:
        self._layers[-1].jobs[job_id] = None
        self._layers[-1].links[job_id] = None

    def set_links(self, job_id: str, links: tuple[_Link, ...]) -> None:
        self._layers[-1].links[job_id] = links

    # -- index lookups ----------------------------------------------------------------------------

    def members(self, chain_id: str) -> dict[int, str]:
        """``chain_index`` → job id of every job of the chain."""
        base = self._store.members.get(chain_id, {})
        dirty = self._dirty_jobs()
        if not dirty:
            return dict(base)
        out = {i: j for i, j in base.items() if j not in dirty}
        for job_id, row in dirty.items():
            if row is not None and row.chain_id == chain_id:
                out[row.chain_index] = job_id
        return out

    def chain(self, chain_id: str) -> tuple[_Row, _Row] | None:
        """(root, tail) of a chain; the tail is the job with the highest ``chain_index``."""
        root = self.job(chain_id)
        if root is None or not root.is_root:
            return None
        members = self.members(chain_id)
        tail = self.job(members[max(members)]) if members else None
        return root, tail or root

    def chain_is_open(self, chain_id: str) -> bool:
        found = self.chain(chain_id)
        return found is not None and not found[1].closes_chain

    def dependents(self, chain_id: str) -> set[str]:
        """Ids of the jobs that have ``chain_id`` among their blockers."""
        base = self._store.dependents.get(chain_id, set())
        dirty = self._dirty_links()
        if not dirty:
            return set(base)
        out = {j for j in base if j not in dirty}
        for job_id, links in dirty.items():
            if links and any(c == chain_id for c, _ in links):
                out.add(job_id)
        return out

    def dedup_roots(self, chain_type_name: str, key: str) -> set[str]:
        base = self._store.dedup.get((chain_type_name, key), set())
        dirty = self._dirty_jobs()
        if not dirty:
            return set(base)
        out = {r for r in base if r not in dirty}
        for job_id, row in dirty.items():
            if (
                row is not None
                and row.is_root
                and row.chain_type_name == chain_type_name
                and row.deduplication_key == key
            ):
                out.add(job_id)
        return out

    def _ordered(
        self,
        base: _SortedKeys | None,
        key_of: Callable[[_Row], _Key | None],
        *,
        reverse: bool = False,
        after: _Key | None = None,
    ) -> Iterator[_Key]:
        """An index in order: committed keys of untouched rows merged with keys of touched rows."""
        base_keys = base.iterate(reverse=reverse, after=after) if base is not None else iter(())
        dirty = self._dirty_jobs()
        if not dirty:
            return base_keys
        dirty_ids = frozenset(dirty)
        extra: list[_Key] = []
        for row in dirty.values():
            if row is None:
                continue
            key = key_of(row)
            if key is None:
                continue
            if after is not None and (key >= after if reverse else key <= after):
                continue
            extra.append(key)
        extra.sort(reverse=reverse)
        untouched = (k for k in base_keys if k[1] not in dirty_ids)
        return heapq.merge(untouched, extra, reverse=reverse)

    def iter_pending(self, type_name: str) -> Iterator[_Key]:
        """(scheduled_at, id) of open, unblocked, unleased jobs of a type, earliest first."""

        def key_of(row: _Row) -> _Key | None:
            return row.pending_key if row.type_name == type_name else None

        return self._ordered(self._store.pending.get(type_name), key_of)

    def iter_leased(self, type_name: str) -> Iterator[_Key]:
        """(leased_until, id) of open leased jobs of a type, earliest expiry first."""

        def key_of(row: _Row) -> _Key | None:
            return row.lease_key if row.type_name == type_name else None

        return self._ordered(self._store.leased.get(type_name), key_of)

    def iter_blocked(self, type_name: str) -> Iterator[_Key]:
        """(created_at, id) of open, blocked, unleased jobs of a type."""

        def key_of(row: _Row) -> _Key | None:
            return row.blocked_key if row.type_name == type_name else None

        return self._ordered(self._store.blocked.get(type_name), key_of)

    def open_type_names(self) -> set[str]:
        """Every type that may have open jobs (a superset: an index may be empty)."""
        store = self._store
        names = set(store.pending) | set(store.leased) | set(store.blocked)
        names.update(row.type_name for row in self._dirty_jobs().values() if row is not None)
        return names

    def iter_created(self, *, reverse: bool, after: _Key | None) -> Iterator[_Key]:
        return self._ordered(
            self._store.created, lambda r: r.created_key, reverse=reverse, after=after
        )

    def iter_roots(self, *, reverse: bool, after: _Key | None) -> Iterator[_Key]:
        return self._ordered(
            self._store.roots,
            lambda r: r.created_key if r.is_root else None,
            reverse=reverse,
            after=after,
        )


# -- helpers ----------------------------------------------------------------------------------------


_stored_fields = operator.attrgetter(*STORED_FIELDS)
"""A stored job's facts in the order of :class:`_Row`'s fields (the tests check the two agree)."""


def _stored(row: _Row, now: datetime) -> StoredJob:
    """The public view of a row, with its derived status and JSON values copied out."""
    return StoredJob(
        id=row.id,
        type_name=row.type_name,
        chain_id=row.chain_id,
        chain_type_name=row.chain_type_name,
        chain_index=row.chain_index,
        input=copy_json(row.input),
        output=copy_json(row.output),
        status=derive_status(
            outcome=row.outcome,
            succeeded_by_job_id=row.succeeded_by_job_id,
            leased_until=row.leased_until,
            blocked=row.blocked,
            scheduled_at=row.scheduled_at,
            now=now,
        ),
        outcome=row.outcome,
        created_at=row.created_at,
        scheduled_at=row.scheduled_at,
        completed_at=row.completed_at,
        completed_by=row.completed_by,
        succeeded_by_job_id=row.succeeded_by_job_id,
        attempt=row.attempt,
        last_attempt_at=row.last_attempt_at,
        last_attempt_error=row.last_attempt_error,
        leased_by=row.leased_by,
        leased_until=row.leased_until,
        blocked=row.blocked,
        deduplication_key=row.deduplication_key,
        chain_trace_context=row.chain_trace_context,
        trace_context=row.trace_context,
        priority=row.priority,
        limit_key=row.limit_key,
    )


def _claim_order(row: _Row) -> int:
    return -row.priority


def _beyond(key: _Key, after: _Key | None, reverse: bool) -> bool:
    if after is None:
        return True
    return key < after if reverse else key > after


_HELD: contextvars.ContextVar[tuple[InMemoryTransaction, ...]] = contextvars.ContextVar(
    "queuert_in_memory_transactions", default=()
)
"""Transactions opened in this context (used to refuse a second, deadlocking one in the same task)."""


class InMemoryTransaction:
    """The transaction object of :class:`InMemoryStateAdapter` (pass it as ``tx=``; otherwise opaque).

    Savepoints yield the same object: operations always work on its innermost open savepoint.
    """

    __slots__ = ("_adapter", "_layers", "_open", "_task")

    def __init__(self, adapter: InMemoryStateAdapter, task: asyncio.Task[object] | None) -> None:
        self._adapter = adapter
        self._task = task
        self._layers: list[_Layer] = [_Layer()]
        self._open = True

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def aborted(self) -> bool:
        """True while a poisoned statement has not been rolled back (see ``poison``)."""
        return any(layer.poisoned for layer in self._layers)

    def __repr__(self) -> str:
        state = "open" if self._open else "ended"
        return f"<InMemoryTransaction {state} savepoints={max(len(self._layers) - 1, 0)}>"


class InMemoryStateAdapter:
    """Jobs, chains and blocker links kept in process memory (tests and single-process apps).

    Nothing is persisted. Transactions are serialised; a task that holds a transaction and opens another
    one (or writes without passing ``tx=``) gets a :class:`~queuert.errors.UsageError` instead of a
    deadlock.
    """

    ids = UUID_IDS

    def __init__(self) -> None:
        self.capabilities = Capabilities(
            savepoints=True,
            row_locks=True,
            concurrent_transactions=False,
            multi_process=False,
            poison_transaction=True,
            concurrency_limits=True,
        )
        self._store = _Store()
        self._lock = asyncio.Lock()
        self._closed = False

    def another(self) -> InMemoryStateAdapter:
        """A second adapter over this one's store (and its transaction lock), which it does not own:
        each sees the other's commits and takes the other's transactions as ``tx=``; closing one
        leaves the other open."""
        other = InMemoryStateAdapter()
        other.ids = self.ids
        other._store = self._store
        other._lock = self._lock
        return other

    # -- lifecycle and transactions ---------------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[InMemoryTransaction]:
        """Open a transaction (waits while another one is open): commit on normal exit, roll back
        when the block raises."""
        return self._open_transaction()

    def savepoint(
        self, tx: InMemoryTransaction
    ) -> AbstractAsyncContextManager[InMemoryTransaction]:
        """A savepoint in ``tx`` (yields ``tx``): released on success, rolled back on error."""
        return self._open_savepoint(tx)

    @asynccontextmanager
    async def _open_transaction(self) -> AsyncIterator[InMemoryTransaction]:
        self._check_open()
        task = asyncio.current_task()
        held = _HELD.get()
        for other in held:
            if other._adapter._store is self._store and other._open and other._task is task:
                raise UsageError(
                    "this task already holds a transaction of this in-memory state adapter and "
                    "transactions are serialised, so opening another one would deadlock: pass the "
                    "open transaction as tx=..."
                )
        async with self._lock:
            self._check_open()
            tx = InMemoryTransaction(self, task)
            token = _HELD.set((*held, tx))
            try:
                try:
                    yield tx
                except BaseException:
                    tx._layers.clear()
                    raise
                layers = tx._layers
                tx._layers = []
                if any(layer.poisoned for layer in layers):
                    raise TransactionAbortedError(
                        "the transaction was aborted by a failed statement and has been rolled back"
                    )
                self._check_open()
                if layers:
                    outer = layers[0]
                    for layer in layers[1:]:
                        layer.merge_into(outer)
                    self._store.apply(outer)
            finally:
                tx._open = False
                _HELD.reset(token)

    @asynccontextmanager
    async def _open_savepoint(self, tx: InMemoryTransaction) -> AsyncIterator[InMemoryTransaction]:
        t = self._check_tx(tx)
        depth = len(t._layers)
        t._layers.append(_Layer())
        try:
            yield t
        except BaseException:
            del t._layers[depth:]
            raise
        above = t._layers[depth:]
        del t._layers[depth:]
        if any(layer.poisoned for layer in above):
            raise TransactionAbortedError(
                "the savepoint was aborted by a failed statement and has been rolled back"
            )
        if t._layers:
            for layer in above:
                layer.merge_into(t._layers[-1])

    async def poison(self, tx: InMemoryTransaction) -> None:
        """Mark the innermost open savepoint of ``tx`` (or ``tx`` itself) as aborted.

        Emulates a failed SQL statement in PostgreSQL: every operation in ``tx`` raises
        :class:`TransactionAbortedError` until that savepoint is rolled back; a poisoned transaction
        rolls back and raises when it would commit. For error-path tests (``StateHarness.poison``).
        """
        self._check_open()
        if not isinstance(tx, InMemoryTransaction) or tx._adapter._store is not self._store:
            raise UsageError("poison() needs an open transaction of this adapter")
        if not tx._open:
            raise UsageError("poison() needs an open transaction of this adapter")
        if tx._layers:
            tx._layers[-1].poisoned = True

    async def migrate(self) -> MigrationResult:
        """Nothing to migrate in memory."""
        self._check_open()
        return MigrationResult()

    async def close(self) -> None:
        """Idempotent; later operations raise :class:`~queuert.errors.StateAdapterClosedError`."""
        self._closed = True

    async def __aenter__(self) -> InMemoryStateAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StateAdapterClosedError()

    def _check_tx(self, tx: object) -> InMemoryTransaction:
        self._check_open()
        if not isinstance(tx, InMemoryTransaction) or tx._adapter._store is not self._store:
            raise UsageError(f"{tx!r} is not a transaction of this in-memory state adapter")
        if not tx._open:
            raise UsageError("the transaction has already ended")
        if tx.aborted:
            raise TransactionAbortedError()
        return tx

    @staticmethod
    def _now() -> datetime:
        return datetime.now(timezone.utc)

    def _read(self, tx: InMemoryTransaction | None, fn: Callable[[_View, datetime], T]) -> T:
        if tx is None:
            self._check_open()
            return fn(_View(self._store, ()), self._now())
        t = self._check_tx(tx)
        return fn(_View(self._store, t._layers), self._now())

    async def _write(self, tx: InMemoryTransaction | None, fn: Callable[[_View, datetime], T]) -> T:
        if tx is not None:
            return self._statement(self._check_tx(tx), fn)
        async with self._open_transaction() as own:
            return self._statement(own, fn)

    def _statement(self, tx: InMemoryTransaction, fn: Callable[[_View, datetime], T]) -> T:
        """Run one operation atomically: in its own layer, kept only if it does not raise."""
        layers = tx._layers
        depth = len(layers)
        layer = _Layer()
        layers.append(layer)
        try:
            result = fn(_View(self._store, layers), self._now())
        except BaseException:
            del layers[depth:]
            raise
        del layers[depth:]
        layer.merge_into(layers[-1])
        return result

    # -- creating ---------------------------------------------------------------------------------

    async def create_jobs(
        self, jobs: Sequence[NewJob], *, tx: InMemoryTransaction | None = None
    ) -> list[CreatedJob]:
        self._check_open()
        if not jobs:
            return []
        prepared = [(job, copy_json(job.input)) for job in jobs]

        def op(view: _View, now: datetime) -> list[CreatedJob]:
            results: list[CreatedJob] = []
            first_of_key: dict[tuple[str, str], StoredJob] = {}
            for new, input_value in prepared:
                dedup = new.deduplication if new.chain_id is None else None
                if new.chain_id is None:
                    if dedup is not None:
                        key = (new.chain_type_name, dedup.key)
                        earlier = first_of_key.get(key)
                        if earlier is not None:
                            results.append(CreatedJob(job=earlier, deduplicated=True))
                            continue
                        match = self._find_duplicate(view, new.chain_type_name, dedup, now)
                        if match is not None:
                            found = _stored(match, now)
                            first_of_key[key] = found
                            results.append(CreatedJob(job=found, deduplicated=True))
                            continue
                else:
                    existing_id = view.members(new.chain_id).get(new.chain_index)
                    existing = view.job(existing_id) if existing_id is not None else None
                    if existing is not None:
                        results.append(CreatedJob(job=_stored(existing, now), deduplicated=True))
                        continue
                if view.job(new.id) is not None:
                    raise DuplicateJobIdError(new.id)
                due = scheduled_at(new.schedule, now)
                fresh = inserted_job(
                    new,
                    input=input_value,
                    created_at=now,
                    scheduled_at=due,
                    status="scheduled" if due > now else "ready",
                )
                row = _Row(*_stored_fields(fresh))
                view.put(row)
                created = _stored(row, now)
                if dedup is not None:
                    first_of_key[(new.chain_type_name, dedup.key)] = created
                results.append(CreatedJob(job=created, deduplicated=False))
            return results

        return await self._write(tx, op)

    @staticmethod
    def _find_duplicate(
        view: _View, chain_type_name: str, dedup: Deduplication, now: datetime
    ) -> _Row | None:
        """The newest chain start matching ``dedup`` (keyed on the chain: its status is the tail's)."""
        excluded = set(dedup.exclude_chain_ids)
        since = now - dedup.window if dedup.window is not None else None
        best: _Row | None = None
        for root_id in view.dedup_roots(chain_type_name, dedup.key):
            if root_id in excluded:
                continue
            root = view.job(root_id)
            if root is None:
                continue
            if since is not None and root.created_at < since:
                continue
            if dedup.scope == "open" and not view.chain_is_open(root_id):
                continue
            if best is None or root.created_key > best.created_key:
                best = root
        return best

    async def add_blockers(
        self,
        links: Sequence[tuple[str, Sequence[str]]],
        *,
        trace_contexts: Sequence[Sequence[str | None]] | None = None,
        tx: InMemoryTransaction | None = None,
    ) -> list[BlockersAdded]:
        self._check_open()
        if not links:
            return []

        def op(view: _View, now: datetime) -> list[BlockersAdded]:
            results: list[BlockersAdded] = []
            for i, (job_id, chain_ids) in enumerate(links):
                row = view.job(job_id)
                if row is None:
                    raise JobNotFoundError(job_id)
                contexts: Sequence[str | None] = (
                    trace_contexts[i] if trace_contexts is not None else [None] * len(chain_ids)
                )
                new_links: list[_Link] = []
                chain_contexts: list[str | None] = []
                open_ids: list[str] = []
                for chain_id, context in zip(chain_ids, contexts, strict=True):
                    found = view.chain(chain_id)
                    if found is None:
                        raise ChainNotFoundError(chain_id)
                    root, tail = found
                    chain_contexts.append(root.chain_trace_context)
                    if not tail.closes_chain and chain_id not in open_ids:
                        open_ids.append(chain_id)
                    new_links.append((chain_id, context))
                all_links = view.links(job_id) + tuple(new_links)
                view.set_links(job_id, all_links)
                blocked = any(view.chain_is_open(c) for c, _ in all_links)
                if blocked != row.blocked:
                    row = replace(row, blocked=blocked)
                    view.put(row)
                results.append(
                    BlockersAdded(
                        job=_stored(row, now),
                        open_blocker_chain_ids=open_ids,
                        blocker_chain_trace_contexts=chain_contexts,
                    )
                )
            return results

        return await self._write(tx, op)

    # -- reading ----------------------------------------------------------------------------------

    async def get_job(
        self, job_id: str, *, lock: bool = False, tx: InMemoryTransaction | None = None
    ) -> StoredJob | None:
        def op(view: _View, now: datetime) -> StoredJob | None:
            row = view.job(job_id)
            return _stored(row, now) if row is not None else None

        return self._read(tx, op)

    async def get_chain(
        self, chain_id: str, *, lock: bool = False, tx: InMemoryTransaction | None = None
    ) -> StoredChain | None:
        def op(view: _View, now: datetime) -> StoredChain | None:
            found = view.chain(chain_id)
            if found is None:
                return None
            return StoredChain(root=_stored(found[0], now), tail=_stored(found[1], now))

        return self._read(tx, op)

    async def get_job_blockers(
        self, job_id: str, *, tx: InMemoryTransaction | None = None
    ) -> list[StoredChain]:
        def op(view: _View, now: datetime) -> list[StoredChain]:
            if view.job(job_id) is None:
                return []
            out: list[StoredChain] = []
            for chain_id, _ in view.links(job_id):
                found = view.chain(chain_id)
                if found is not None:
                    out.append(
                        StoredChain(root=_stored(found[0], now), tail=_stored(found[1], now))
                    )
            return out

        return self._read(tx, op)

    async def next_due(
        self, type_names: Sequence[str], *, tx: InMemoryTransaction | None = None
    ) -> timedelta | None:
        def op(view: _View, now: datetime) -> timedelta | None:
            earliest: datetime | None = None
            for type_name in dict.fromkeys(type_names):
                for due, _ in view.iter_pending(type_name):
                    if earliest is None or due < earliest:
                        earliest = due
                    break
            if earliest is None:
                return None
            return max(earliest - now, timedelta(0))

        return self._read(tx, op)

    async def get_queue_stats(
        self, type_names: Sequence[str] | None = None, *, tx: InMemoryTransaction | None = None
    ) -> list[QueueStats]:
        def op(view: _View, now: datetime) -> list[QueueStats]:
            names = view.open_type_names() if type_names is None else set(type_names)
            found: list[QueueStats] = []
            for name in names:
                ready = scheduled = running = expired = 0
                oldest: datetime | None = None
                for due, _ in view.iter_pending(name):
                    if due <= now:
                        ready += 1
                        if oldest is None:
                            oldest = due
                    else:
                        scheduled += 1
                for until, _ in view.iter_leased(name):
                    running += 1
                    if until <= now:
                        expired += 1
                blocked = sum(1 for _ in view.iter_blocked(name))
                if ready or scheduled or running or blocked:
                    found.append(
                        QueueStats(
                            name,
                            ready=ready,
                            oldest_ready_age=None if oldest is None else now - oldest,
                            scheduled=scheduled,
                            blocked=blocked,
                            running=running,
                            lease_expired=expired,
                        )
                    )
            return queue_stats_in_order(found, type_names)

        return self._read(tx, op)

    async def list_chains(
        self,
        filter: ChainFilter,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: InMemoryTransaction | None = None,
    ) -> Page[StoredChain]:
        reverse = order == "desc"
        after = decode_chains_cursor(cursor) if cursor is not None else None
        type_names = set(filter.type_names) if filter.type_names is not None else None
        dedup_keys = (
            set(filter.deduplication_keys) if filter.deduplication_keys is not None else None
        )

        def op(view: _View, now: datetime) -> Page[StoredChain]:
            source: Iterator[_Key]
            if filter.chain_ids is not None or filter.job_ids is not None:
                ids: set[str] | None = None
                if filter.chain_ids is not None:
                    ids = set(filter.chain_ids)
                if filter.job_ids is not None:
                    via_jobs = {
                        row.chain_id for j in filter.job_ids if (row := view.job(j)) is not None
                    }
                    ids = via_jobs if ids is None else ids & via_jobs
                keys = [
                    row.created_key
                    for c in ids or ()
                    if (row := view.job(c)) is not None and row.is_root
                ]
                keys.sort(reverse=reverse)
                source = (k for k in keys if _beyond(k, after, reverse))
            else:
                source = view.iter_roots(reverse=reverse, after=after)
            items: list[StoredChain] = []
            for _, chain_id in source:
                found = view.chain(chain_id)
                if found is None:
                    continue
                root, tail = found
                if type_names is not None and root.type_name not in type_names:
                    continue
                if filter.status is not None:
                    status = "closed" if tail.closes_chain else "open"
                    if status != filter.status:
                        continue
                if filter.created_from is not None and root.created_at < filter.created_from:
                    continue
                if filter.created_to is not None and root.created_at >= filter.created_to:
                    continue
                if filter.root_only and view.dependents(chain_id):
                    continue
                if dedup_keys is not None and root.deduplication_key not in dedup_keys:
                    continue
                items.append(StoredChain(root=_stored(root, now), tail=_stored(tail, now)))
                if len(items) > limit:
                    break
            return chains_page(items, limit)

        return self._read(tx, op)

    async def get_job_activity(
        self, *, window: timedelta, buckets: int, tx: InMemoryTransaction | None = None
    ) -> JobActivity:
        def op(view: _View, now: datetime) -> JobActivity:
            since = now - window
            counts: dict[tuple[str, str], int] = {}
            closed: dict[tuple[int, str], int] = {}
            workers: dict[str, tuple[int, datetime]] = {}
            for _, job_id in view.iter_created(reverse=False, after=None):
                row = view.job(job_id)
                if row is None:
                    continue
                if row.completed_at is not None and row.completed_at < since:
                    continue
                job = _stored(row, now)
                key = (row.type_name, job.status)
                counts[key] = counts.get(key, 0) + 1
                if row.completed_at is None:
                    continue
                index = int((row.completed_at - since) / window * buckets)
                slot = (index, job.status)
                closed[slot] = closed.get(slot, 0) + 1
                if row.completed_by is not None:
                    n, last = workers.get(row.completed_by, (0, row.completed_at))
                    workers[row.completed_by] = (n + 1, max(last, row.completed_at))
            return JobActivity(
                now=now,
                since=since,
                counts=[
                    StatusCount(type_name, status, n)  # type: ignore[arg-type]
                    for (type_name, status), n in sorted(counts.items())
                ],
                buckets=activity_buckets(since, window, buckets, closed),
                workers=[
                    WorkerActivity(worker_id, n, last)
                    for worker_id, (n, last) in sorted(workers.items())
                ],
            )

        return self._read(tx, op)

    async def list_jobs(
        self,
        filter: JobFilter,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: InMemoryTransaction | None = None,
    ) -> Page[StoredJob]:
        reverse = order == "desc"
        after = decode_jobs_cursor(cursor) if cursor is not None else None
        type_names = set(filter.type_names) if filter.type_names is not None else None
        statuses = set(filter.statuses) if filter.statuses is not None else None
        job_ids = set(filter.job_ids) if filter.job_ids is not None else None
        chain_ids = set(filter.chain_ids) if filter.chain_ids is not None else None
        chain_types = set(filter.chain_type_names) if filter.chain_type_names is not None else None

        def op(view: _View, now: datetime) -> Page[StoredJob]:
            source: Iterator[_Key]
            if job_ids is not None or chain_ids is not None:
                candidates: set[str] = set()
                if job_ids is not None:
                    candidates = set(job_ids)
                else:
                    for chain_id in chain_ids or ():
                        candidates.update(view.members(chain_id).values())
                keys = [row.created_key for j in candidates if (row := view.job(j)) is not None]
                keys.sort(reverse=reverse)
                source = (k for k in keys if _beyond(k, after, reverse))
            else:
                source = view.iter_created(reverse=reverse, after=after)
            items: list[StoredJob] = []
            for _, job_id in source:
                row = view.job(job_id)
                if row is None:
                    continue
                if type_names is not None and row.type_name not in type_names:
                    continue
                if job_ids is not None and row.id not in job_ids:
                    continue
                if chain_ids is not None and row.chain_id not in chain_ids:
                    continue
                if chain_types is not None and row.chain_type_name not in chain_types:
                    continue
                if filter.created_from is not None and row.created_at < filter.created_from:
                    continue
                if filter.created_to is not None and row.created_at >= filter.created_to:
                    continue
                job = _stored(row, now)
                if statuses is not None and job.status not in statuses:
                    continue
                items.append(job)
                if len(items) > limit:
                    break
            return jobs_page(items, limit)

        return self._read(tx, op)

    async def list_chain_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "asc",
        cursor: str | None = None,
        limit: int = 50,
        tx: InMemoryTransaction | None = None,
    ) -> Page[StoredJob]:
        reverse = order == "desc"
        after = decode_chain_jobs_cursor(cursor) if cursor is not None else None

        def op(view: _View, now: datetime) -> Page[StoredJob]:
            if view.chain(chain_id) is None:
                return Page(items=[], next_cursor=None)
            members = view.members(chain_id)
            items: list[StoredJob] = []
            for index in sorted(members, reverse=reverse):
                if after is not None and (index >= after if reverse else index <= after):
                    continue
                row = view.job(members[index])
                if row is None:
                    continue
                items.append(_stored(row, now))
                if len(items) > limit:
                    break
            return chain_jobs_page(items, limit)

        return self._read(tx, op)

    async def list_blocked_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: InMemoryTransaction | None = None,
    ) -> Page[StoredJob]:
        reverse = order == "desc"
        after = decode_blocked_jobs_cursor(cursor) if cursor is not None else None

        def op(view: _View, now: datetime) -> Page[StoredJob]:
            rows = [row for j in view.dependents(chain_id) if (row := view.job(j)) is not None]
            rows.sort(key=lambda r: r.created_key, reverse=reverse)
            items: list[StoredJob] = []
            for row in rows:
                if not _beyond(row.created_key, after, reverse):
                    continue
                items.append(_stored(row, now))
                if len(items) > limit:
                    break
            return blocked_jobs_page(items, limit)

        return self._read(tx, op)

    # -- processing -------------------------------------------------------------------------------

    async def claim_jobs(
        self,
        *,
        leases: Mapping[str, timedelta],
        limit: int,
        worker_id: str,
        limits: Mapping[str, ConcurrencyLimit] | None = None,
        tx: InMemoryTransaction | None = None,
    ) -> ClaimResult:
        self._check_open()
        durations = dict(leases)
        bounds = {t: b for t, b in (limits or {}).items() if t in durations and b.is_set}

        def op(view: _View, now: datetime) -> ClaimResult:
            pending = heapq.merge(*(view.iter_pending(t) for t in durations))
            ready: list[_Row] = []
            for due, job_id in pending:
                if due > now:
                    break
                row = view.job(job_id)
                if row is not None:  # the index only lists existing rows
                    ready.append(row)
            # highest priority first; the merge already ordered each priority by (scheduled_at, id)
            ready.sort(key=_claim_order)
            if bounds:
                running_types: dict[str, int] = {}
                running_keys: dict[tuple[str, str], int] = {}
                for type_name in bounds:
                    for _, job_id in view.iter_leased(type_name):
                        leased = view.job(job_id)
                        if leased is None:  # the index only lists existing rows
                            continue
                        running_types[type_name] = running_types.get(type_name, 0) + 1
                        if leased.limit_key is not None:
                            key = (type_name, leased.limit_key)
                            running_keys[key] = running_keys.get(key, 0) + 1
                take, has_more = take_within_limits(
                    ((r.type_name, r.limit_key, r) for r in ready),
                    limits=bounds,
                    running_types=running_types,
                    running_keys=running_keys,
                    want=limit,
                )
            else:
                take, has_more = ready[:limit], len(ready) > limit
            claimed: list[StoredJob] = []
            for row in take:
                row = replace(
                    row,
                    attempt=row.attempt + 1,
                    last_attempt_at=now,
                    leased_by=worker_id,
                    leased_until=now + durations[row.type_name],
                )
                view.put(row)
                claimed.append(_stored(row, now))
            return ClaimResult(jobs=claimed, has_more=has_more)

        return await self._write(tx, op)

    async def renew_leases(
        self,
        leases: Mapping[str, timedelta],
        *,
        worker_id: str,
        tx: InMemoryTransaction | None = None,
    ) -> LeaseRenewal:
        self._check_open()
        durations = dict(leases)
        if not durations:
            return LeaseRenewal(renewed={}, lost=[])

        def op(view: _View, now: datetime) -> LeaseRenewal:
            renewed: dict[str, datetime] = {}
            lost: list[str] = []
            for job_id, duration in durations.items():
                row = view.job(job_id)
                if (
                    row is None
                    or row.outcome is not None
                    or row.leased_until is None
                    or row.leased_by != worker_id
                ):
                    lost.append(job_id)
                    continue
                until = now + duration
                view.put(replace(row, leased_until=until))
                renewed[job_id] = until
            return LeaseRenewal(renewed=renewed, lost=lost)

        return await self._write(tx, op)

    async def complete_job(
        self,
        job_id: str,
        *,
        outcome: Outcome,
        worker_id: str | None,
        output: JsonValue = None,
        succeeded_by_job_id: str | None = None,
        error: str | None = None,
        owner: str | None = None,
        tx: InMemoryTransaction | None = None,
    ) -> CompleteResult:
        self._check_open()
        completion = Completion(job_id, outcome, output, succeeded_by_job_id, error)

        def op(view: _View, now: datetime) -> CompleteResult:
            row = view.job(job_id)
            if row is None:
                raise JobNotFoundError(job_id)
            if not row.is_open:
                raise JobAlreadyCompletedError(job_id)
            if owner is not None and row.leased_by != owner:
                raise JobTakenByAnotherWorkerError(job_id, owner, row.leased_by)
            return self._close_row(view, row, completion, worker_id, now)

        return await self._write(tx, op)

    async def complete_jobs(
        self,
        completions: Sequence[Completion],
        *,
        worker_id: str | None,
        owner: str | None = None,
        tx: InMemoryTransaction | None = None,
    ) -> list[CompleteResult | None]:
        self._check_open()
        if not completions:
            return []

        def op(view: _View, now: datetime) -> list[CompleteResult | None]:
            results: list[CompleteResult | None] = []
            for completion in completions:
                row = view.job(completion.job_id)
                if row is None or not row.is_open or (owner is not None and row.leased_by != owner):
                    results.append(None)
                    continue
                results.append(self._close_row(view, row, completion, worker_id, now))
            return results

        return await self._write(tx, op)

    def _close_row(
        self, view: _View, row: _Row, completion: Completion, worker_id: str | None, now: datetime
    ) -> CompleteResult:
        if completion.outcome == "completed":
            last_error = None
        elif completion.error is not None:
            last_error = completion.error
        else:
            last_error = row.last_attempt_error
        row = replace(
            row,
            outcome=completion.outcome,
            output=copy_json(completion.output),
            succeeded_by_job_id=completion.succeeded_by_job_id,
            completed_at=now,
            completed_by=worker_id,
            leased_by=None,
            leased_until=None,
            last_attempt_error=last_error,
        )
        view.put(row)
        closed = _stored(row, now)
        if completion.succeeded_by_job_id is not None or view.chain_is_open(row.chain_id):
            return CompleteResult(job=closed)
        return self._unblock_dependents(view, row.chain_id, closed, now)

    @staticmethod
    def _unblock_dependents(
        view: _View, chain_id: str, closed: StoredJob, now: datetime
    ) -> CompleteResult:
        """The chain ``chain_id`` just closed: release the jobs that waited only for closed chains."""
        dependents = [row for j in view.dependents(chain_id) if (row := view.job(j)) is not None]
        dependents.sort(key=lambda r: r.created_key)
        unblocked: list[StoredJob] = []
        contexts: list[str] = []
        for row in dependents:
            links = view.links(row.id)
            contexts.extend(c for blocker, c in links if blocker == chain_id and c is not None)
            if not row.blocked or any(view.chain_is_open(b) for b, _ in links):
                continue
            row = replace(row, blocked=False, scheduled_at=max(row.scheduled_at, now))
            view.put(row)
            if row.is_open:
                unblocked.append(_stored(row, now))
        return CompleteResult(job=closed, unblocked=unblocked, blocker_trace_contexts=contexts)

    async def reschedule_job(
        self,
        job_id: str,
        *,
        schedule: Schedule | None,
        error: str | None,
        tx: InMemoryTransaction | None = None,
    ) -> StoredJob:
        self._check_open()

        def op(view: _View, now: datetime) -> StoredJob:
            row = view.job(job_id)
            if row is None:
                raise JobNotFoundError(job_id)
            row = replace(
                row,
                leased_by=None,
                leased_until=None,
                scheduled_at=scheduled_at(schedule, now),
                last_attempt_error=error if error is not None else row.last_attempt_error,
            )
            view.put(row)
            return _stored(row, now)

        return await self._write(tx, op)

    async def reap_expired_leases(
        self,
        type_names: Sequence[str],
        *,
        limit: int,
        exclude_job_ids: Sequence[str] = (),
        tx: InMemoryTransaction | None = None,
    ) -> list[StoredJob]:
        self._check_open()
        excluded = set(exclude_job_ids)
        types = list(dict.fromkeys(type_names))

        def op(view: _View, now: datetime) -> list[StoredJob]:
            reaped: list[StoredJob] = []
            if limit < 1:
                return reaped
            for leased_until, job_id in heapq.merge(*(view.iter_leased(t) for t in types)):
                if leased_until > now or len(reaped) >= limit:
                    break
                if job_id in excluded:
                    continue
                old = view.job(job_id)
                if old is None:  # pragma: no cover - the index only lists existing rows
                    continue
                row = replace(old, leased_by=None, leased_until=None)
                view.put(row)
                reaped.append(
                    replace(
                        _stored(row, now), leased_by=old.leased_by, leased_until=old.leased_until
                    )
                )
            return reaped

        return await self._write(tx, op)

    # -- administration ---------------------------------------------------------------------------

    async def trigger_jobs(
        self, job_ids: Sequence[str], *, tx: InMemoryTransaction | None = None
    ) -> TriggerResult:
        self._check_open()
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return TriggerResult(triggered=[], not_found=[], not_triggerable=[])

        def op(view: _View, now: datetime) -> TriggerResult:
            rows: list[_Row] = []
            not_found: list[str] = []
            not_triggerable: list[tuple[str, str]] = []
            for job_id in ids:
                row = view.job(job_id)
                if row is None:
                    not_found.append(job_id)
                    continue
                status = _stored(row, now).status
                if status not in ("scheduled", "ready"):
                    not_triggerable.append((job_id, status))
                    continue
                rows.append(row)
            if not_found or not_triggerable:
                return TriggerResult(
                    triggered=[],
                    not_found=not_found,
                    not_triggerable=not_triggerable,  # type: ignore[arg-type]
                )
            triggered: list[StoredJob] = []
            for row in rows:
                # A ready job keeps its place in the FIFO order (only a future time moves to now).
                row = replace(row, scheduled_at=min(row.scheduled_at, now))
                view.put(row)
                triggered.append(_stored(row, now))
            return TriggerResult(triggered=triggered, not_found=[], not_triggerable=[])

        return await self._write(tx, op)

    async def delete_chains(
        self,
        chain_ids: Sequence[str],
        *,
        cascade: bool = False,
        tx: InMemoryTransaction | None = None,
    ) -> DeleteResult:
        self._check_open()
        if not chain_ids:
            return DeleteResult(deleted=[], references=[])

        def op(view: _View, now: datetime) -> DeleteResult:
            targets: dict[str, tuple[_Row, _Row]] = {}
            for chain_id in chain_ids:
                found = view.chain(chain_id)
                if found is not None:
                    targets.setdefault(chain_id, found)
            members = {chain_id: view.members(chain_id) for chain_id in targets}
            if cascade:
                queue = list(targets)
                while queue:
                    chain_id = queue.pop()
                    for job_id in members[chain_id].values():
                        for blocker_id, _ in view.links(job_id):
                            if blocker_id in targets:
                                continue
                            found = view.chain(blocker_id)
                            if found is None:
                                continue
                            targets[blocker_id] = found
                            members[blocker_id] = view.members(blocker_id)
                            queue.append(blocker_id)
            references: list[BlockerReference] = []
            for chain_id in targets:
                for job_id in sorted(view.dependents(chain_id)):
                    row = view.job(job_id)
                    if row is not None and row.chain_id not in targets:
                        references.append(BlockerReference(chain_id, job_id))
            if references:
                return DeleteResult(deleted=[], references=references)
            deleted = [
                StoredChain(root=_stored(root, now), tail=_stored(tail, now))
                for root, tail in targets.values()
            ]
            for chain_members in members.values():
                for job_id in chain_members.values():
                    view.delete(job_id)
            return DeleteResult(deleted=deleted, references=[])

        return await self._write(tx, op)
