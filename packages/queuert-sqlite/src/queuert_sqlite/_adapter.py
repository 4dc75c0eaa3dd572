"""The SQLite state adapter: :class:`queuert.state.StateAdapter` over a :class:`SqliteProvider`.

Every operation is one function executed on a connection's thread (one round trip, whatever the batch
size); inside it, statements work on whole batches through ``json_each`` or ``executemany``. The one
exception is a batch of new chains with fresh ids and no deduplication key inside a transaction: its
INSERT is queued and sent with the transaction's next operation or its COMMIT (no round trip of its
own). Writers are serialised (one writer connection, ``BEGIN IMMEDIATE``), so the locking rules of the contract hold
trivially: a locked read is a read inside the write transaction, and "find work" operations never
meet a row locked by someone else.
"""

from __future__ import annotations

import heapq
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

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
)
from queuert.ids import UUID_IDS
from queuert.json import JsonValue, dumps
from queuert.limits import ConcurrencyLimit, take_within_limits
from queuert.opening import Opening
from queuert.paging import blocked_jobs_page, chain_jobs_page, chains_page, jobs_page
from queuert.schedule import Schedule
from queuert.sqlalchemy_session import attach_session_commit_hooks
from queuert.state import (
    READ_OUTPUT,
    UNREADABLE_TIME,
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
    JobStatus,
    LeaseRenewal,
    MigrationResult,
    NewJob,
    Order,
    Outcome,
    Page,
    QueueStats,
    StateAdapter,
    StatusCount,
    StoredChain,
    StoredJob,
    TriggerResult,
    WorkerActivity,
    activity_buckets,
    derive_status,
    queue_stats_in_order,
)

from queuert_sqlite._create import (
    InsertConflict,
    create_on_thread,
    fresh_starts,
    prepare,
    taken_ids,
)
from queuert_sqlite._driver import is_integrity_error
from queuert_sqlite._inline_provider import InlineSqliteProvider
from queuert_sqlite._options import SqliteOptions
from queuert_sqlite._provider import SqliteProvider
from queuert_sqlite._rows import (
    I_CREATED_AT,
    I_ID,
    I_LEASED_BY,
    I_LEASED_UNTIL,
    I_OUTCOME,
    I_PRIORITY,
    I_SCHEDULED_AT,
    NCOLS,
    job_from_row,
)
from queuert_sqlite._schema import apply_migrations, validate_prefix
from queuert_sqlite._sql import Statements, json_param
from queuert_sqlite._time import add_delta, format_ts, now, parse_ts, read_ts, scheduled_at
from queuert_sqlite._transaction import SqliteConnection, in_savepoint

logger = logging.getLogger("queuert.sqlite")

__all__ = ["SqliteStateAdapter"]

T = TypeVar("T")

INLINE_BATCH = 100
"""The largest batch (chain starts, blocker links, renewals) whose write may run on the event loop's
thread (see :meth:`SqliteProvider.run_write`); a larger one takes the writer's thread, so that the
loop is never held for long.

A worker's claims (``claim_jobs``) and group commits (``complete_jobs``) always take the thread:
while one is there, more handlers finish and more slots free up, so the next claim and the next
group commit are larger. Run on the loop they return at once and carry half as many jobs each,
for more CPU per processed job."""

_CompletionParams = tuple[str, str, "str | None", "str | None", "str | None"]
"""(job id, outcome, output JSON text, successor id, error) of one completion."""


def _completion_params(completion: Completion) -> _CompletionParams:
    output_text = completion.output_json() if completion.closes_with_output else None
    return (
        completion.job_id,
        completion.outcome,
        output_text,
        completion.succeeded_by_job_id,
        completion.error,
    )


class SqliteStateAdapter:
    """Jobs, chains and blocker links in a SQLite database (see the package README).

        Open it with :meth:`open` (or :func:`queuert_sqlite.from_url`), in ``async with`` or with
    ``await``, then ``await adapter.migrate()``.
        The transaction object (``tx=``) is a :class:`~queuert_sqlite.SqliteConnection`.
    """

    ids = UUID_IDS

    def __init__(
        self,
        provider: SqliteProvider | InlineSqliteProvider,
        *,
        table_prefix: str = "queuert_",
        owns_provider: bool = True,
    ) -> None:
        self.table_prefix = validate_prefix(table_prefix)
        self.provider = provider
        self._owns_provider = owns_provider
        self._closed = False
        self._sql = Statements(self.table_prefix)
        self.capabilities = Capabilities(
            savepoints=True,
            row_locks=True,
            concurrent_transactions=False,
            multi_process=not provider.memory,
            poison_transaction=True,
            concurrency_limits=True,
        )

    @classmethod
    def open(
        cls,
        database: str | os.PathLike[str],
        *,
        table_prefix: str = "queuert_",
        readers: int = 2,
        busy_timeout: float = 5.0,
        busy_retries: int = 3,
        journal_mode: str = "WAL",
        synchronous: str = "NORMAL",
        cached_statements: int = 256,
        checkpoint_interval: float | None = 0.25,
        inline_writes: bool = True,
        driver: str | None = None,
    ) -> Opening[SqliteStateAdapter]:
        """Open ``database`` (a file path, ``":memory:"`` or a ``file:`` URI); see SqliteOptions.

        ``async with SqliteStateAdapter.open(path) as adapter:`` closes the adapter when the block
        ends; ``adapter = await SqliteStateAdapter.open(path)`` leaves closing to you."""
        prefix = validate_prefix(table_prefix)
        options = SqliteOptions(
            readers=readers,
            busy_timeout=busy_timeout,
            busy_retries=busy_retries,
            journal_mode=journal_mode,
            synchronous=synchronous,
            cached_statements=cached_statements,
            checkpoint_interval=checkpoint_interval,
            inline_writes=inline_writes,
        )
        if driver is not None:
            options = replace(options, driver=driver)
        path = os.fspath(database)

        async def connect() -> SqliteStateAdapter:
            return cls(await SqliteProvider.open(path, options), table_prefix=prefix)

        return Opening(connect)

    # -- lifecycle and transactions ---------------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[SqliteConnection]:
        """A write transaction (``BEGIN IMMEDIATE`` before its first statement); yields the
        connection to pass as ``tx=`` and to run your own SQL on."""
        self._check_open()
        return self.provider.transaction()

    def savepoint(self, tx: SqliteConnection) -> AbstractAsyncContextManager[SqliteConnection]:
        self._check_open()
        return self.provider.savepoint(tx)

    def attach_commit_hooks(
        self, tx: Any, on_commit: Callable[[], None], on_rollback: Callable[[], None]
    ) -> bool:
        """See :class:`queuert.state.SupportsCommitHooks`: for a SQLAlchemy ``AsyncSession`` given
        as ``tx``, its commit and rollback events end the client's hooks, so
        ``client.start_chain(job, tx=session)`` needs no ``client.hooks(...)`` around it."""
        sync_session = getattr(tx, "sync_session", None)
        if sync_session is None:
            return False
        return attach_session_commit_hooks(sync_session, on_commit, on_rollback)

    async def migrate(self) -> MigrationResult:
        """Create or upgrade the schema (one ``BEGIN IMMEDIATE`` transaction; safe to run from
        several processes at once: the write lock serialises them)."""
        prefix = self.table_prefix
        return await self._write(lambda raw: apply_migrations(raw, prefix))

    async def close(self) -> None:
        """Close the adapter, and the provider if the adapter owns it (``owns_provider``); a
        provider it was given stays open for its owner. Idempotent."""
        self._closed = True
        if self._owns_provider:
            await self.provider.close()

    async def __aenter__(self) -> SqliteStateAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StateAdapterClosedError()
        self.provider._check_open()

    def _write(
        self,
        fn: Callable[[sqlite3.Connection], T],
        tx: SqliteConnection | None = None,
        *,
        atomic: bool = True,
        inline: bool = False,
    ) -> Awaitable[T]:
        """``provider.run_write`` once the adapter is known to be open (no coroutine of its own).

        ``inline``: ``fn`` is short (a few statements on indexed rows, for a batch the caller
        chose), so it may run on the event loop's thread (see :meth:`SqliteProvider.run_write`);
        never for maintenance over many rows."""
        self._check_open()
        return self.provider.run_write(fn, tx, atomic=atomic, inline=inline)

    def _read(
        self, fn: Callable[[sqlite3.Connection], T], tx: SqliteConnection | None = None
    ) -> Awaitable[T]:
        """``provider.run_read`` once the adapter is known to be open (no coroutine of its own)."""
        self._check_open()
        return self.provider.run_read(fn, tx)

    async def poison(self, tx: SqliteConnection) -> None:
        """Make a statement fail inside ``tx`` (the conformance suites' ``StateHarness.poison``).

        Runs an INSERT that violates a NOT NULL constraint, swallows the driver's
        ``IntegrityError`` (as a caller that catches it would) and then emulates PostgreSQL's
        aborted-transaction state, which SQLite does not have: every operation in ``tx`` raises
        :class:`~queuert.errors.TransactionAbortedError` until the savepoint that was open at the
        failure rolls back, and the transaction cannot commit.
        """
        self._check_open()
        failing = self._sql.failing_insert
        try:
            await self.provider.poison(tx, lambda raw: raw.execute(failing))
        except Exception as exc:
            if not is_integrity_error(exc):
                raise

    # -- creating ---------------------------------------------------------------------------------

    async def create_jobs(
        self, jobs: Sequence[NewJob], *, tx: SqliteConnection | None = None
    ) -> list[CreatedJob]:
        if not jobs:
            self._check_open()
            return []
        fresh = fresh_starts(jobs) if tx is None or self.provider.can_defer(tx) else None
        if fresh is not None:
            # nothing to look up and nothing to clash with: rows and results are known here
            rows, results = fresh
            insert = self._sql.insert_job
            if tx is not None:
                self._check_open()
                self.provider.defer_write(tx, lambda raw: raw.executemany(insert, rows))
            elif len(rows) == 1:
                # one start in a transaction of its own: BEGIN IMMEDIATE, its INSERT and COMMIT in
                # one hop
                (row,) = rows
                await self._write(lambda raw: raw.execute(insert, row), atomic=False, inline=True)
            else:
                await self._write(
                    lambda raw: raw.executemany(insert, rows),
                    atomic=False,
                    inline=len(rows) <= INLINE_BATCH,
                )
            return results
        prepared = prepare(jobs)
        sql = self._sql
        try:
            # one job is one INSERT, atomic by itself; a batch needs a savepoint inside tx
            return await self._write(
                lambda raw: create_on_thread(raw, sql, prepared),
                tx,
                atomic=len(prepared) > 1,
                inline=len(prepared) <= INLINE_BATCH,
            )
        except InsertConflict as conflict:
            # Everything of the batch was rolled back; name the id that collides, if that was it.
            ids = conflict.ids
            taken = set(await self._read(lambda raw: taken_ids(raw, sql, ids), tx))
            for job_id in ids:
                if job_id in taken:
                    raise DuplicateJobIdError(job_id) from None
            raise conflict.cause from None

    async def add_blockers(
        self,
        links: Sequence[tuple[str, Sequence[str]]],
        *,
        trace_contexts: Sequence[Sequence[str | None]] | None = None,
        tx: SqliteConnection | None = None,
    ) -> list[BlockersAdded]:
        if not links:
            self._check_open()
            return []
        plan: list[tuple[str, list[str], list[str | None]]] = []
        for i, (job_id, chain_ids) in enumerate(links):
            chains = list(chain_ids)
            contexts: list[str | None] = (
                list(trace_contexts[i]) if trace_contexts is not None else [None] * len(chains)
            )
            plan.append((job_id, chains, contexts))
        job_ids = list(dict.fromkeys(job_id for job_id, _, _ in plan))
        chain_ids_all = list(dict.fromkeys(c for _, chains, _ in plan for c in chains))
        sql = self._sql

        def op(raw: sqlite3.Connection) -> list[BlockersAdded]:
            _, now_dt = now()
            jobs = {
                row[0]: job_from_row(row, now_dt)
                for row in raw.execute(sql.jobs_by_ids, (json_param(job_ids),)).fetchall()
            }
            chains: dict[str, tuple[str | None, bool]] = {}
            if chain_ids_all:
                for row in raw.execute(sql.blocker_chains, (json_param(chain_ids_all),)).fetchall():
                    chains[row[0]] = (row[1], bool(row[2]))
            for job_id, chain_list, _ in plan:
                if job_id not in jobs:
                    raise JobNotFoundError(job_id)
                for chain_id in chain_list:
                    if chain_id not in chains:
                        raise ChainNotFoundError(chain_id)
            next_slot = {
                row[0]: row[1] + 1 for row in raw.execute(sql.max_slots, (json_param(job_ids),))
            }
            link_rows: list[tuple[str, int, str, str | None]] = []
            to_block: list[str] = []
            results: list[BlockersAdded] = []
            for job_id, chain_list, contexts in plan:
                slot = next_slot.get(job_id, 0)
                open_ids: list[str] = []
                chain_contexts: list[str | None] = []
                for chain_id, context in zip(chain_list, contexts, strict=True):
                    link_rows.append((job_id, slot, chain_id, context))
                    slot += 1
                    chain_context, is_open = chains[chain_id]
                    chain_contexts.append(chain_context)
                    if is_open and chain_id not in open_ids:
                        open_ids.append(chain_id)
                next_slot[job_id] = slot
                job = jobs[job_id]
                if open_ids and not job.blocked:
                    job = replace(
                        job,
                        blocked=True,
                        status=derive_status(
                            outcome=job.outcome,
                            succeeded_by_job_id=job.succeeded_by_job_id,
                            leased_until=job.leased_until,
                            blocked=True,
                            scheduled_at=job.scheduled_at,
                            now=now_dt,
                        ),
                    )
                    jobs[job_id] = job
                    to_block.append(job_id)
                results.append(
                    BlockersAdded(
                        job=job,
                        open_blocker_chain_ids=open_ids,
                        blocker_chain_trace_contexts=chain_contexts,
                    )
                )
            if link_rows:
                raw.executemany(sql.insert_blocker, link_rows)
            if to_block:
                raw.execute(sql.mark_blocked, (json_param(to_block),))
            # a job listed twice gets its final row in every result
            return [replace(r, job=jobs[r.job.id]) for r in results]

        return await self._write(op, tx, inline=len(plan) <= INLINE_BATCH)

    # -- reading ----------------------------------------------------------------------------------

    async def get_job(
        self, job_id: str, *, lock: bool = False, tx: SqliteConnection | None = None
    ) -> StoredJob | None:
        # lock=True: inside tx the write lock (BEGIN IMMEDIATE) is already held; writers are
        # serialised, so no other transaction can change the row before ours ends.
        sql = self._sql.get_job

        def op(raw: sqlite3.Connection) -> StoredJob | None:
            _, now_dt = now()
            row = raw.execute(sql, (job_id,)).fetchone()
            return None if row is None else job_from_row(row, now_dt)

        return await self._read(op, tx)

    async def get_chain(
        self, chain_id: str, *, lock: bool = False, tx: SqliteConnection | None = None
    ) -> StoredChain | None:
        sql = self._sql.get_chain

        def op(raw: sqlite3.Connection) -> StoredChain | None:
            _, now_dt = now()
            root: StoredJob | None = None
            tail: StoredJob | None = None
            for row in raw.execute(sql, (chain_id,)).fetchall():
                if row[0] == 0:
                    root = job_from_row(row, now_dt, 1)
                else:
                    tail = job_from_row(row, now_dt, 1)
            if root is None or tail is None:
                return None
            return StoredChain(root=root, tail=tail)

        return await self._read(op, tx)

    async def get_job_blockers(
        self, job_id: str, *, tx: SqliteConnection | None = None
    ) -> list[StoredChain]:
        sql = self._sql.get_job_blockers

        def op(raw: sqlite3.Connection) -> list[StoredChain]:
            _, now_dt = now()
            return [
                StoredChain(root=job_from_row(row, now_dt), tail=job_from_row(row, now_dt, NCOLS))
                for row in raw.execute(sql, (job_id,)).fetchall()
            ]

        return await self._read(op, tx)

    async def next_due(
        self, type_names: Sequence[str], *, tx: SqliteConnection | None = None
    ) -> timedelta | None:
        types = json_param(list(dict.fromkeys(type_names)))
        sql = self._sql.next_due

        def op(raw: sqlite3.Connection) -> timedelta | None:
            _, now_dt = now()
            row = raw.execute(sql, (types,)).fetchone()
            if row is None or row[0] is None:
                return None
            try:
                due = parse_ts(row[0])
            except ValueError:  # a time edited by hand into something else: the poll interval
                logger.warning(
                    "a scheduled_at that is not a time", extra={"queuert_value": str(row[0])[:40]}
                )
                return None
            return max(due - now_dt, timedelta(0))

        return await self._read(op, tx)

    async def get_queue_stats(
        self, type_names: Sequence[str] | None = None, *, tx: SqliteConnection | None = None
    ) -> list[QueueStats]:
        if type_names is None:
            sql, types = self._sql.queue_stats, None
        else:
            sql, types = self._sql.queue_stats_of, json_param(sorted(set(type_names)))

        def op(raw: sqlite3.Connection) -> list[QueueStats]:
            now_text, now_dt = now()
            params: tuple[str, ...] = (now_text,) if types is None else (now_text, types)
            found: dict[str, dict[str, Any]] = {}
            for kind, type_name, first, second, oldest in raw.execute(sql, params):
                entry = found.setdefault(type_name, {})
                if kind == 0:
                    entry["ready"], entry["scheduled"] = first, second
                    oldest_at = None if oldest is None else read_ts(oldest)
                    if oldest_at is not None:  # a time edited into something else: no age
                        entry["oldest_ready_age"] = max(now_dt - oldest_at, timedelta(0))
                elif kind == 1:
                    entry["running"], entry["lease_expired"] = first, second
                else:
                    entry["blocked"] = first
            return queue_stats_in_order(
                [QueueStats(name, **entry) for name, entry in found.items()], type_names
            )

        return await self._read(op, tx)

    async def list_chains(
        self,
        filter: ChainFilter,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: SqliteConnection | None = None,
    ) -> Page[StoredChain]:
        desc = order == "desc"
        after = decode_chains_cursor(cursor) if cursor is not None else None
        query, params = self._sql.list_chains(filter, desc=desc, after=after, limit=limit)

        def op(raw: sqlite3.Connection) -> Page[StoredChain]:
            _, now_dt = now()
            items = [
                StoredChain(root=job_from_row(row, now_dt), tail=job_from_row(row, now_dt, NCOLS))
                for row in raw.execute(query, params).fetchall()
            ]
            return chains_page(items, limit)

        return await self._read(op, tx)

    async def get_job_activity(
        self, *, window: timedelta, buckets: int, tx: SqliteConnection | None = None
    ) -> JobActivity:
        query = self._sql.job_activity

        def op(raw: sqlite3.Connection) -> JobActivity:
            now_text, now_dt = now()
            since = now_dt - window
            params = {
                "now": now_text,
                "since": format_ts(since),
                "buckets": float(buckets),
                "window": window.total_seconds(),
            }
            counts: list[StatusCount] = []
            closed: dict[tuple[int, str], int] = {}
            workers: list[WorkerActivity] = []
            for kind, name, status, n, slot, last in raw.execute(query, params):
                if kind == "c":
                    counts.append(StatusCount(name, status, n))
                elif kind == "b":
                    closed[(slot, status)] = n
                else:
                    workers.append(WorkerActivity(name, n, read_ts(last) or UNREADABLE_TIME))
            counts.sort(key=lambda c: (c.type_name, c.status))
            workers.sort(key=lambda w: w.worker_id)
            return JobActivity(
                now=now_dt,
                since=since,
                counts=counts,
                buckets=activity_buckets(since, window, buckets, closed),
                workers=workers,
            )

        return await self._read(op, tx)

    async def list_jobs(
        self,
        filter: JobFilter,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: SqliteConnection | None = None,
    ) -> Page[StoredJob]:
        desc = order == "desc"
        after = decode_jobs_cursor(cursor) if cursor is not None else None
        query, params = self._sql.list_jobs(filter, desc=desc, after=after, limit=limit)
        return await self._job_page(query, params, limit, jobs_page, tx)

    async def list_chain_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "asc",
        cursor: str | None = None,
        limit: int = 50,
        tx: SqliteConnection | None = None,
    ) -> Page[StoredJob]:
        desc = order == "desc"
        after = decode_chain_jobs_cursor(cursor) if cursor is not None else None
        query, params = self._sql.list_chain_jobs(chain_id, desc=desc, after=after, limit=limit)

        def op(raw: sqlite3.Connection) -> Page[StoredJob]:
            _, now_dt = now()
            items = [job_from_row(row, now_dt) for row in raw.execute(query, params).fetchall()]
            return chain_jobs_page(items, limit)

        return await self._read(op, tx)

    async def list_blocked_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: SqliteConnection | None = None,
    ) -> Page[StoredJob]:
        desc = order == "desc"
        after = decode_blocked_jobs_cursor(cursor) if cursor is not None else None
        query, params = self._sql.list_blocked_jobs(chain_id, desc=desc, after=after, limit=limit)
        return await self._job_page(query, params, limit, blocked_jobs_page, tx)

    async def _job_page(
        self,
        query: str,
        params: dict[str, Any],
        limit: int,
        page: Callable[[list[StoredJob], int], Page[StoredJob]],
        tx: SqliteConnection | None,
    ) -> Page[StoredJob]:
        needs_now = ":now" in query

        def op(raw: sqlite3.Connection) -> Page[StoredJob]:
            now_text, now_dt = now()
            if needs_now:
                params["now"] = now_text
            items = [job_from_row(row, now_dt) for row in raw.execute(query, params).fetchall()]
            return page(items, limit)

        return await self._read(op, tx)

    # -- processing -------------------------------------------------------------------------------

    async def claim_jobs(
        self,
        *,
        leases: Mapping[str, timedelta],
        limit: int,
        worker_id: str,
        limits: Mapping[str, ConcurrencyLimit] | None = None,
        tx: SqliteConnection | None = None,
    ) -> ClaimResult:
        durations = dict(leases)
        if not durations:
            self._check_open()
            return ClaimResult(jobs=[], has_more=False)
        bounds = {t: b for t, b in (limits or {}).items() if t in durations and b.is_set}
        if bounds and limit >= 1:
            return await self._claim_limited(durations, limit, worker_id, bounds, tx)
        types = list(durations)
        sql = self._sql
        claim_sql = sql.claim(len(types))
        types_json = json_param(types)

        def op(raw: sqlite3.Connection) -> ClaimResult:
            now_text, now_dt = now()
            if limit < 1:
                more = raw.execute(sql.any_ready, (now_text, types_json)).fetchone()[0]
                return ClaimResult(jobs=[], has_more=bool(more))
            untils = [add_delta(now_text, durations[t]) for t in types]
            rows = raw.execute(claim_sql, (now_text, limit, worker_id, *types, *untils)).fetchall()
            rows.sort(key=lambda r: (-r[I_PRIORITY], r[I_SCHEDULED_AT], r[I_ID]))
            claimed = [job_from_row(row, now_dt) for row in rows]
            has_more = False
            if len(claimed) >= limit:
                # writers are serialised: anything still ready now_text remained after this claim
                has_more = bool(raw.execute(sql.any_ready, (now_text, types_json)).fetchone()[0])
            return ClaimResult(jobs=claimed, has_more=has_more)

        # On the writer's thread (see INLINE_BATCH): a worker claims again as soon as this returns.
        return await self._write(op, tx, atomic=False)

    async def _claim_limited(
        self,
        durations: dict[str, timedelta],
        limit: int,
        worker_id: str,
        bounds: dict[str, ConcurrencyLimit],
        tx: SqliteConnection | None,
    ) -> ClaimResult:
        """A claim under concurrency limits: count the running jobs, walk the ready ones in claim
        order taking those that fit (:func:`~queuert.limits.take_within_limits`), update those.
        Several statements in one write transaction: the write lock, taken before the first
        read, keeps every other claimer (of any process) out until it commits."""
        sql = self._sql
        types = list(durations)
        types_json = json_param(types)

        def op(raw: sqlite3.Connection) -> ClaimResult:
            now_text, now_dt = now()
            running_types: dict[str, int] = {}
            running_keys: dict[tuple[str, str], int] = {}
            for type_name, key, count in raw.execute(sql.running_by_key, (types_json,)):
                running_types[type_name] = running_types.get(type_name, 0) + count
                if key is not None:
                    running_keys[(type_name, key)] = count
            walks = [
                raw.execute(sql.ready_in_claim_order, (now_text, type_name)) for type_name in types
            ]
            ready = heapq.merge(*walks, key=lambda r: (-r[0], r[1], r[2]))
            take, has_more = take_within_limits(
                ((r[3], r[4], r[2]) for r in ready),
                limits=bounds,
                running_types=running_types,
                running_keys=running_keys,
                want=limit,
            )
            for walk in walks:
                walk.close()
            if not take:
                return ClaimResult(jobs=[], has_more=has_more)
            untils = dumps({t: add_delta(now_text, durations[t]) for t in types})
            rows = raw.execute(
                sql.claim_ids, (now_text, worker_id, json_param(take), untils)
            ).fetchall()
            rows.sort(key=lambda r: (-r[I_PRIORITY], r[I_SCHEDULED_AT], r[I_ID]))
            return ClaimResult(jobs=[job_from_row(row, now_dt) for row in rows], has_more=has_more)

        # on the writer's thread: the walk may pass many ready jobs that do not fit the limits
        return await self._write(op, tx)

    async def renew_leases(
        self, leases: Mapping[str, timedelta], *, worker_id: str, tx: SqliteConnection | None = None
    ) -> LeaseRenewal:
        durations = dict(leases)
        if not durations:
            self._check_open()
            return LeaseRenewal(renewed={}, lost=[])
        sql = self._sql.renew_leases

        def op(raw: sqlite3.Connection) -> LeaseRenewal:
            now_text, _ = now()
            untils = {job_id: add_delta(now_text, d) for job_id, d in durations.items()}
            renewed = {
                row[0]: parse_ts(row[1])
                for row in raw.execute(sql, (json_param(untils), worker_id)).fetchall()
            }
            lost = [job_id for job_id in durations if job_id not in renewed]
            return LeaseRenewal(
                renewed={k: renewed[k] for k in durations if k in renewed}, lost=lost
            )

        return await self._write(op, tx, atomic=False, inline=len(durations) <= INLINE_BATCH)

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
        tx: SqliteConnection | None = None,
    ) -> CompleteResult:
        params = _completion_params(Completion(job_id, outcome, output, succeeded_by_job_id, error))
        sql = self._sql

        def op(raw: sqlite3.Connection) -> CompleteResult:
            now_text, now_dt = now()
            waiting = (
                params[3] is None and raw.execute(sql.chain_has_dependents, (job_id,)).fetchone()[0]
            )
            if waiting:  # two writes (close, unblock): keep them atomic
                result = in_savepoint(
                    raw, lambda r: self._close(r, params, worker_id, owner, now_text, now_dt)
                )
            else:  # one write: atomic by itself
                result = self._close(raw, params, worker_id, owner, now_text, now_dt, unblock=False)
            if result is not None:
                return result
            # the guarded UPDATE changed nothing: say why (nothing was written)
            row = raw.execute(sql.get_job, (job_id,)).fetchone()
            if row is None:
                raise JobNotFoundError(job_id)
            current = job_from_row(row, now_dt)
            if current.outcome is not None:
                raise JobAlreadyCompletedError(job_id)
            raise JobTakenByAnotherWorkerError(job_id, owner, current.leased_by)

        return await self._write(op, tx, atomic=False, inline=True)

    async def complete_jobs(
        self,
        completions: Sequence[Completion],
        *,
        worker_id: str | None,
        owner: str | None = None,
        tx: SqliteConnection | None = None,
    ) -> list[CompleteResult | None]:
        checked = [_completion_params(c) for c in completions]
        if not checked:
            self._check_open()
            return []

        sql = self._sql
        if len(checked) == 1:
            # One completion (the exactly-once path closes its job alone): complete_job's
            # statements, without the batch's JSON encoding and json_each.
            params = checked[0]
            job_id = params[0]

            def op_one(raw: sqlite3.Connection) -> list[CompleteResult | None]:
                now_text, now_dt = now()
                if (
                    params[3] is None
                    and raw.execute(sql.chain_has_dependents, (job_id,)).fetchone()[0]
                ):
                    # two writes (close, unblock): keep them atomic
                    return [
                        in_savepoint(
                            raw,
                            lambda r: self._close(r, params, worker_id, owner, now_text, now_dt),
                        )
                    ]
                return [self._close(raw, params, worker_id, owner, now_text, now_dt, unblock=False)]

            return await self._write(op_one, tx, atomic=False)
        batch = json_param([list(c) for c in checked])
        ids = json_param([c[0] for c in checked])
        # each closed row's output is the value its completion wrote (not parsed back), unless an
        # id repeats in the batch (which of its completions the UPDATE applied is SQLite's choice)
        outputs = {c.job_id: c.written_output for c in completions}
        if len(outputs) != len(completions):
            outputs = {}
        # jobs the caller claimed come back built from the claimed job and the few columns the
        # close alone knows (ids unique, as above)
        claimed = {c.job_id: c for c in completions if c.closes_from_claim}
        if len(claimed) != len(completions):
            claimed = {}

        def op(raw: sqlite3.Connection) -> list[CompleteResult | None]:
            now_text, now_dt = now()
            if raw.execute(sql.any_chain_has_dependents, (ids,)).fetchone()[0]:
                # Releasing dependents depends on the order of the closes (a job blocked by two
                # chains of the batch is released by the second): close one by one, in order.
                return [self._close(raw, p, worker_id, owner, now_text, now_dt) for p in checked]
            # Nothing waits for these chains: one UPDATE closes every job it may close.
            args = (batch, now_text, worker_id, owner)
            if claimed:
                rows = raw.execute(sql.complete_many_claimed, args).fetchall()
                closed = {
                    row[0]: self._closed_claimed(raw, claimed[row[0]], row, worker_id, now_dt)
                    for row in rows
                }
            else:
                rows = raw.execute(sql.complete_many, args).fetchall()
                closed = {
                    row[I_ID]: job_from_row(row, now_dt, 0, outputs.get(row[I_ID], READ_OUTPUT))
                    for row in rows
                }
            return [CompleteResult(job=closed[c[0]]) if c[0] in closed else None for c in checked]

        # On the writer's thread (see INLINE_BATCH): the worker's group commit.
        return await self._write(op, tx, atomic=len(checked) > 1)

    def _closed_claimed(
        self,
        raw: sqlite3.Connection,
        completion: Completion,
        row: Sequence[Any],
        worker_id: str | None,
        now_dt: datetime,
    ) -> StoredJob:
        """The job ``completion`` closed at ``now_dt``, from its claimed job and the row's
        ``(id, attempt, last_attempt_at)``; read back whole if that time is not one (edited by
        hand: :func:`job_from_row` says so)."""
        _, attempt, last_attempt_at = row
        try:
            last = None if last_attempt_at is None else parse_ts(last_attempt_at)
        except (ValueError, TypeError):
            return job_from_row(raw.execute(self._sql.get_job, (row[0],)).fetchone(), now_dt)
        return completion.closed_job(
            completed_at=now_dt, completed_by=worker_id, attempt=attempt, last_attempt_at=last
        )

    def _close(
        self,
        raw: sqlite3.Connection,
        params: _CompletionParams,
        worker_id: str | None,
        owner: str | None,
        now_text: str,
        now_dt: datetime,
        *,
        unblock: bool = True,
    ) -> CompleteResult | None:
        """Close one open job (leased by ``owner`` if given) and release the jobs that waited for
        its chain; None if the guarded UPDATE matched nothing (on the writer thread).

        ``unblock=False``: the caller knows that no job waits for the chain."""
        sql = self._sql
        job_id, outcome, output_text, successor, error = params
        row = raw.execute(
            sql.complete_job,
            (job_id, outcome, output_text, successor, now_text, worker_id, error, owner),
        ).fetchone()
        if row is None:
            return None
        closed = job_from_row(row, now_dt)
        if successor is not None or not unblock:
            return CompleteResult(job=closed)
        still_open, has_dependents = raw.execute(sql.after_close, (closed.chain_id,)).fetchone()
        if still_open or not has_dependents:
            return CompleteResult(job=closed)
        return self._release(raw, closed, now_text, now_dt)

    def _release(
        self, raw: sqlite3.Connection, closed: StoredJob, now_text: str, now_dt: datetime
    ) -> CompleteResult:
        """``closed`` closed its chain: unblock the jobs that waited only for closed chains."""
        sql = self._sql
        contexts = [r[0] for r in raw.execute(sql.blocker_trace_contexts, (closed.chain_id,))]
        released = raw.execute(sql.unblock, (closed.chain_id, now_text)).fetchall()
        released.sort(key=lambda r: (r[I_CREATED_AT], r[I_ID]))
        unblocked = [job_from_row(r, now_dt) for r in released if r[I_OUTCOME] is None]
        return CompleteResult(job=closed, unblocked=unblocked, blocker_trace_contexts=contexts)

    async def reschedule_job(
        self,
        job_id: str,
        *,
        schedule: Schedule | None,
        error: str | None,
        tx: SqliteConnection | None = None,
    ) -> StoredJob:
        sql = self._sql.reschedule

        def op(raw: sqlite3.Connection) -> StoredJob:
            now_text, now_dt = now()
            due, _ = scheduled_at(schedule, now_text, now_dt)
            row = raw.execute(sql, (job_id, due, error)).fetchone()
            if row is None:
                raise JobNotFoundError(job_id)
            return job_from_row(row, now_dt)

        return await self._write(op, tx, atomic=False, inline=True)

    async def reap_expired_leases(
        self,
        type_names: Sequence[str],
        *,
        limit: int,
        exclude_job_ids: Sequence[str] = (),
        tx: SqliteConnection | None = None,
    ) -> list[StoredJob]:
        types = json_param(list(dict.fromkeys(type_names)))
        excluded = json_param(list(exclude_job_ids))
        sql = self._sql
        if limit < 1 or not type_names:
            self._check_open()
            return []

        def op(raw: sqlite3.Connection) -> list[StoredJob]:
            now_text, now_dt = now()
            rows = raw.execute(sql.expired_leases, (now_text, types, excluded, limit)).fetchall()
            if not rows:
                return []
            raw.execute(sql.clear_leases, (json_param([r[0] for r in rows]),))
            reaped: list[StoredJob] = []
            for row in rows:
                cleared = list(row)
                cleared[I_LEASED_BY] = None
                cleared[I_LEASED_UNTIL] = None
                job = job_from_row(cleared, now_dt)
                # a lease end edited into text that is not a time (it sorts as expired) is
                # reaped like the others: the cleared row is readable again
                lease_end = read_ts(row[I_LEASED_UNTIL]) or UNREADABLE_TIME
                reaped.append(replace(job, leased_by=row[I_LEASED_BY], leased_until=lease_end))
            return reaped

        return await self._write(op, tx, atomic=False)  # one write

    # -- administration ---------------------------------------------------------------------------

    async def trigger_jobs(
        self, job_ids: Sequence[str], *, tx: SqliteConnection | None = None
    ) -> TriggerResult:
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            self._check_open()
            return TriggerResult(triggered=[], not_found=[], not_triggerable=[])
        sql = self._sql
        ids_json = json_param(ids)

        def op(raw: sqlite3.Connection) -> TriggerResult:
            now_text, now_dt = now()
            found = {
                row[0]: job_from_row(row, now_dt)
                for row in raw.execute(sql.jobs_by_ids, (ids_json,)).fetchall()
            }
            not_found = [i for i in ids if i not in found]
            not_triggerable: list[tuple[str, JobStatus]] = [
                (i, found[i].status)
                for i in ids
                if i in found and found[i].status not in ("scheduled", "ready")
            ]
            if not_found or not_triggerable:
                return TriggerResult(
                    triggered=[], not_found=not_found, not_triggerable=not_triggerable
                )
            raw.execute(sql.trigger, (ids_json, now_text))
            triggered = []
            for i in ids:
                job = found[i]
                if job.scheduled_at > now_dt:
                    job = replace(job, scheduled_at=now_dt, status="ready")
                triggered.append(job)
            return TriggerResult(triggered=triggered, not_found=[], not_triggerable=[])

        return await self._write(op, tx, atomic=False)  # one write

    async def delete_chains(
        self, chain_ids: Sequence[str], *, cascade: bool = False, tx: SqliteConnection | None = None
    ) -> DeleteResult:
        if not chain_ids:
            self._check_open()
            return DeleteResult(deleted=[], references=[])
        requested = json_param(list(dict.fromkeys(chain_ids)))
        sql = self._sql

        def op(raw: sqlite3.Connection) -> DeleteResult:
            _, now_dt = now()
            targets: dict[str, None] = {
                row[0]: None for row in raw.execute(sql.chain_roots, (requested,))
            }
            if not targets:
                return DeleteResult(deleted=[], references=[])
            if cascade:
                # the blocker chains of every job of every chain in the set, transitively
                stack = list(targets)
                while stack:
                    chain_id = stack.pop()
                    for (blocker,) in raw.execute(sql.chain_blocker_chains, (chain_id,)).fetchall():
                        if blocker not in targets:
                            targets[blocker] = None
                            stack.append(blocker)
            target_json = json_param(list(targets))
            references = [
                BlockerReference(chain_id=row[1], referenced_by_job_id=row[2])
                for row in raw.execute(sql.external_references, (target_json,))
            ]
            if references:
                return DeleteResult(deleted=[], references=references)
            deleted = [
                StoredChain(root=job_from_row(row, now_dt), tail=job_from_row(row, now_dt, NCOLS))
                for row in raw.execute(sql.chains_by_ids, (target_json,)).fetchall()
            ]
            raw.execute(sql.delete_blockers, (target_json,))
            raw.execute(sql.delete_jobs, (target_json,))
            return DeleteResult(deleted=deleted, references=[])  # in no particular order

        return await self._write(op, tx)


if TYPE_CHECKING:

    def _conforms(adapter: SqliteStateAdapter) -> StateAdapter[SqliteConnection]:
        """mypy checks that the adapter implements the contract's protocol."""
        return adapter
