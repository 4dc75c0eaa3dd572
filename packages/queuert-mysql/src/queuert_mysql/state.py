"""``MysqlStateAdapter``: the MySQL / MariaDB implementation of :class:`queuert.state.StateAdapter`."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

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
)
from queuert.ids import UUID_IDS
from queuert.json import JsonValue
from queuert.limits import ConcurrencyLimit, take_within_limits
from queuert.opening import Opening
from queuert.paging import blocked_jobs_page, chain_jobs_page, chains_page, fetch_size, jobs_page
from queuert.schedule import Schedule, scheduled_at
from queuert.state import (
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
    inserted_job,
    queue_stats_in_order,
)

from queuert_mysql._errors import DEADLOCK, DUPLICATE_KEY, error_code, is_retryable
from queuert_mysql._listing import Where
from queuert_mysql._provider import MysqlProvider, Row, TxState, savepoint_name
from queuert_mysql._rows import chain_from_row, job_from_row, naive, utc
from queuert_mysql._schema import BOOTSTRAP, MIGRATION_LOCK, MIGRATIONS, Names
from queuert_mysql._sql import (
    ABOVE_PRIORITIES,
    BY_CHAIN,
    INSERT_COLUMNS,
    INSERT_ROW,
    NCOLS,
    NOW,
    Statements,
    chain_open,
    cols,
    marks,
    next_due_round,
    queue_stats,
    status_sql,
    tail_join,
)

__all__ = ["MysqlStateAdapter"]

_SCHEDULED_AT = 9
_PRIORITY = 22
_LIMIT_KEY = 23
"""Positions of these columns in :func:`~queuert_mysql._sql.cols`."""

TxT = TypeVar("TxT")
T = TypeVar("T")

logger = logging.getLogger("queuert.mysql")

_ABORTED = (
    "a statement failed in this transaction: roll back to the enclosing savepoint (or end the "
    "transaction) before running more statements"
)
_DEADLOCKED = (
    "the server chose this transaction as a deadlock victim and rolled it back: end the "
    "transaction and run it again"
)

_MAX_FOLLOW = 1000
"""Upper bound on re-reads while following a chain that keeps continuing under a locked read."""

_RETRIES = 8
"""Attempts of an operation in a transaction of the adapter's own that meets a deadlock or a lock
wait timeout (a transaction the caller passed as ``tx`` is never retried: the error surfaces)."""

_MIGRATION_LOCK_TIMEOUT = 60
"""Seconds ``migrate()`` waits for another process's migration to finish."""


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _until(now: datetime, delta: timedelta) -> datetime:
    try:
        return now + delta
    except OverflowError:
        return datetime.max.replace(tzinfo=now.tzinfo)


class MysqlStateAdapter(Generic[TxT]):
    """Jobs, chains and blocker links in MySQL 8.0+ or MariaDB 10.6+ tables
    (``{table_prefix}job``, ``{table_prefix}job_blocker``, ``{table_prefix}dedup_lock``).

    ``provider`` runs the SQL on the driver you use (see :mod:`queuert_mysql._provider`); the
    transaction object ``tx`` of every operation is that driver's transaction object. Use
    :meth:`connect` for the default aiomysql pool. Call :meth:`migrate` once per deployment (it is
    idempotent and safe to run from several processes at once).

    Transactions must run at ``READ COMMITTED`` (the providers set it on their connections): the
    adapter relies on each statement seeing what committed before it started.

    :meth:`close` closes the provider too unless ``owns_provider=False``.
    """

    ids = UUID_IDS

    def __init__(
        self,
        provider: MysqlProvider[TxT],
        *,
        database: str | None = None,
        table_prefix: str = "queuert_",
        owns_provider: bool = True,
    ) -> None:
        self.names = Names(database, table_prefix)
        self.provider = provider
        self._owns_provider = owns_provider
        self.sql = Statements(self.names)
        self.capabilities = Capabilities(
            savepoints=True,
            row_locks=True,
            concurrent_transactions=True,
            multi_process=True,
            poison_transaction=True,
            concurrency_limits=True,
        )
        self._closed = False

    @classmethod
    def connect(
        cls,
        *,
        database: str | None = None,
        table_prefix: str = "queuert_",
        minsize: int = 1,
        maxsize: int = 10,
        **connect_options: Any,
    ) -> Opening[MysqlStateAdapter[Any]]:
        """An adapter over a new aiomysql pool (closed by :meth:`close`); ``connect_options`` go to
        ``aiomysql.create_pool`` (``host``, ``port``, ``user``, ``password``, ``db``, ...).
        ``async with MysqlStateAdapter.connect(...) as adapter:`` closes it when the block ends,
        ``adapter = await MysqlStateAdapter.connect(...)`` leaves closing to you."""
        from queuert_mysql._provider import AiomysqlProvider

        names = Names(database, table_prefix)  # validate before connecting

        async def open() -> MysqlStateAdapter[Any]:
            provider = await AiomysqlProvider.connect(
                minsize=minsize, maxsize=maxsize, **connect_options
            )
            return MysqlStateAdapter(provider, database=names.database, table_prefix=names.prefix)

        return Opening(open)

    # -- plumbing ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StateAdapterClosedError()

    def _state(self, tx: TxT) -> TxState:
        state = self.provider.state(tx)
        if state.aborted is not None:
            raise TransactionAbortedError(_DEADLOCKED if state.aborted == 0 else _ABORTED)
        return state

    @staticmethod
    def _failed(state: TxState, exc: BaseException) -> None:
        """A statement failed in a transaction: enter the aborted state (see ``TxState``)."""
        if error_code(exc) == DEADLOCK:
            state.aborted = 0  # the server rolled back the whole transaction, savepoints too
        elif state.aborted is None:
            state.aborted = state.depth

    async def _fetch(
        self, sql: str, args: Sequence[Any], tx: TxT | None, *, expected: int | None = None
    ) -> list[Row]:
        """Rows of one statement. In ``tx``, a failure puts the transaction into the aborted state,
        except an error numbered ``expected`` that the caller handles (MySQL has rolled back just
        the statement)."""
        self._check_open()
        if tx is None:
            return await self.provider.fetch(sql, args, None)
        state = self._state(tx)
        try:
            return await self.provider.fetch(sql, args, tx)
        except Exception as exc:
            if expected is None or error_code(exc) != expected:
                self._failed(state, exc)
            raise

    async def _fetch_many(
        self, sql: str, args: Sequence[Any], tx: TxT | None, *, expected: int | None = None
    ) -> list[Row]:
        """:meth:`_fetch` for several statements in one round trip (``provider.fetch_many``)."""
        self._check_open()
        if tx is None:
            return await self.provider.fetch_many(sql, args, None)
        state = self._state(tx)
        try:
            return await self.provider.fetch_many(sql, args, tx)
        except Exception as exc:
            if expected is None or error_code(exc) != expected:
                self._failed(state, exc)
            raise

    async def _execute(self, sql: str, args: Sequence[Any], tx: TxT | None) -> int:
        self._check_open()
        if tx is None:
            return await self.provider.execute(sql, args, None)
        state = self._state(tx)
        try:
            return await self.provider.execute(sql, args, tx)
        except Exception as exc:
            self._failed(state, exc)
            raise

    async def _in_tx(self, tx: TxT | None, fn: Callable[[TxT], Awaitable[T]]) -> T:
        """``fn`` inside ``tx``, or inside a transaction of its own that is run again (whole) after
        a deadlock or a lock wait timeout."""
        if tx is not None:
            return await fn(tx)
        attempt = 0
        while True:
            self._check_open()
            try:
                async with self.provider.transaction() as own:
                    return await fn(own)
            except Exception as exc:
                attempt += 1
                if not is_retryable(exc) or attempt >= _RETRIES:
                    raise
                logger.debug(
                    "retrying after a deadlock or lock wait timeout",
                    extra={"queuert_error_code": error_code(exc), "queuert_attempt": attempt},
                )
                await asyncio.sleep(random.uniform(0, 0.005 * attempt))

    # -- lifecycle and transactions ---------------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[TxT]:
        self._check_open()
        return self.provider.transaction()

    def attach_commit_hooks(
        self, tx: Any, on_commit: Callable[[], None], on_rollback: Callable[[], None]
    ) -> bool:
        """See :class:`queuert.state.SupportsCommitHooks`: supported for SQLAlchemy sessions."""
        attach = getattr(self.provider, "attach_commit_hooks", None)
        return bool(attach(tx, on_commit, on_rollback)) if attach is not None else False

    def savepoint(self, tx: TxT) -> AbstractAsyncContextManager[TxT]:
        return self._savepoint(tx)

    @asynccontextmanager
    async def _savepoint(self, tx: TxT) -> AsyncIterator[TxT]:
        self._check_open()
        state = self._state(tx)
        name = savepoint_name()
        await self._execute(f"SAVEPOINT {name}", (), tx)
        state.depth += 1
        depth = state.depth
        try:
            yield tx
        except BaseException:
            state.depth = depth - 1
            if state.aborted is not None and state.aborted >= depth:
                state.aborted = None  # rolling this savepoint back ends the aborted state
            if state.aborted is None:
                await self.provider.execute(f"ROLLBACK TO SAVEPOINT {name}", (), tx)
                await self.provider.execute(f"RELEASE SAVEPOINT {name}", (), tx)
            raise
        state.depth = depth - 1
        if state.aborted is not None and state.aborted >= depth:
            # a failed statement inside was swallowed by the block: undo the savepoint, and say so
            state.aborted = None
            await self.provider.execute(f"ROLLBACK TO SAVEPOINT {name}", (), tx)
            await self.provider.execute(f"RELEASE SAVEPOINT {name}", (), tx)
            raise TransactionAbortedError(
                "a statement failed in this savepoint; it was rolled back"
            )
        await self._execute(f"RELEASE SAVEPOINT {name}", (), tx)

    async def poison(self, tx: TxT) -> None:
        """Make a statement fail inside ``tx`` (a NOT NULL violation), as a caller that swallows
        the error would; the transaction is then aborted until its savepoint rolls back. For
        error-path tests."""
        with suppress(Exception):
            await self._execute(self.sql.failing, (), tx)

    async def migrate(self) -> MigrationResult:
        """Create or upgrade the schema; see :mod:`queuert_mysql._schema` for the migrations.

        Runs on one connection holding ``GET_LOCK`` (one lock name per database and table prefix),
        so processes migrating at once apply every migration exactly once. MySQL commits DDL as it
        runs, so each migration is recorded right after its statements.
        """
        self._check_open()
        names = self.names
        applied: list[str] = []
        known = [m.name for m in MIGRATIONS]
        async with self.provider.transaction() as tx:
            # GET_LOCK is held by the session, across the implicit commits of the DDL below
            database = names.database
            if database is None:
                ((database,),) = await self.provider.fetch("SELECT DATABASE()", (), tx)
            # GET_LOCK names are at most 64 characters: a digest of the database and prefix
            scope = hashlib.sha256(f"{database}:{names.prefix}".encode()).hexdigest()[:40]
            lock_name = f"{MIGRATION_LOCK}:{scope}"
            ((got,),) = await self.provider.fetch(
                "SELECT GET_LOCK(%s, %s)", (lock_name, _MIGRATION_LOCK_TIMEOUT), tx
            )
            if got != 1:
                raise TimeoutError(f"another process held the migration lock {lock_name!r}")
            try:
                exists = await self.provider.fetch(
                    "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_name = %s",
                    (database, f"{names.prefix}migration"),
                    tx,
                )
                if not exists:
                    await self.provider.execute(names.render(BOOTSTRAP), (), tx)
                done = [
                    row[0]
                    for row in await self.provider.fetch(
                        names.render("SELECT name FROM {migration} ORDER BY name"), (), tx
                    )
                ]
                skipped = [name for name in known if name in done]
                unrecognized = [name for name in done if name not in known]
                for migration in MIGRATIONS:
                    if migration.name in done:
                        continue
                    logger.info(
                        "applying migration",
                        extra={"queuert_migration": migration.name, "queuert_prefix": names.prefix},
                    )
                    for statement in migration.statements:
                        await self.provider.execute(names.render(statement), (), tx)
                    await self.provider.execute(
                        names.render(
                            f"INSERT INTO {{migration}} (name, applied_at) VALUES (%s, {NOW})"
                        ),
                        (migration.name,),
                        tx,
                    )
                    applied.append(migration.name)
            finally:
                await self.provider.fetch("SELECT RELEASE_LOCK(%s)", (lock_name,), tx)
        return MigrationResult(applied=applied, skipped=skipped, unrecognized=unrecognized)

    async def close(self) -> None:
        """Close the adapter, and its provider if it owns it (``owns_provider``). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_provider:
            await self.provider.close()

    async def __aenter__(self) -> MysqlStateAdapter[TxT]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- creating ---------------------------------------------------------------------------------

    def _dedup_lock_key(self, chain_type_name: str, key: str) -> str:
        """The dedup-lock row of a (chain type, key): its SHA-256, in hex (``UNHEX`` in SQL)."""
        return hashlib.sha256("\x1f".join((chain_type_name, key)).encode()).hexdigest()

    async def _now(self, tx: TxT | None) -> datetime:
        ((now,),) = await self._fetch(self.sql.now, (), tx)
        return utc(now)

    async def create_jobs(
        self, jobs: Sequence[NewJob], *, tx: TxT | None = None
    ) -> list[CreatedJob]:
        self._check_open()
        if not jobs:
            return []
        prepared = [(new, new.input_json()) for new in jobs]
        if all(new.chain_id is None and new.deduplication is None for new in jobs):
            # Chain starts only: nothing to look up, and one multi-row INSERT is atomic by itself.
            if self.provider.multi_statements(tx) and all(new.schedule is None for new in jobs):
                return await self._create_now(prepared, tx)
            return await self._create(prepared, tx)
        return await self._in_tx(tx, lambda t: self._create(prepared, t))

    async def _create(self, prepared: list[tuple[NewJob, str]], tx: TxT | None) -> list[CreatedJob]:
        for _ in range(_MAX_FOLLOW):
            now = await self._now(tx)
            existing = await self._positions(prepared, tx)
            leaders, matched = await self._deduplication(prepared, now, tx)
            rows, results = _plan(prepared, existing, leaders, matched, now)
            if not rows:
                return results
            args = [value for row in rows for value in row]
            sql = self.sql.sized(
                "insert",
                len(rows),
                lambda n: (
                    f"INSERT INTO {{job}} ({INSERT_COLUMNS}) VALUES " + ", ".join([INSERT_ROW] * n)
                ),
            )
            try:
                await self._fetch(sql, args, tx, expected=DUPLICATE_KEY)
            except Exception as exc:
                if error_code(exc) != DUPLICATE_KEY:
                    raise
                ids = [row[0] for row in rows]
                taken = {
                    row[0]
                    for row in await self._fetch(
                        self.sql.sized(
                            "taken",
                            len(ids),
                            lambda n: f"SELECT id FROM {{job}} WHERE id IN ({marks(n)})",
                        ),
                        ids,
                        tx,
                    )
                }
                for job_id in ids:
                    if job_id in taken:
                        raise DuplicateJobIdError(job_id) from None
                # A concurrent transaction took one of our continuations' chain positions and
                # committed (the unique check waited for it): look again and return its job.
                continue
            return results
        raise AssertionError("continuation positions kept changing")  # pragma: no cover

    async def _create_now(
        self, prepared: list[tuple[NewJob, str]], tx: TxT | None
    ) -> list[CreatedJob]:
        """Chain starts due now, without deduplication: the INSERT takes the server's clock for
        ``created_at`` and ``scheduled_at``, and a read of one inserted row's ``created_at`` in the
        same round trip returns it; the jobs are assembled from what was sent."""
        seen: set[str] = set()
        args: list[Any] = []
        for new, text in prepared:
            if new.id in seen:
                raise DuplicateJobIdError(new.id)
            seen.add(new.id)
            args.extend(
                (
                    new.id,
                    new.type_name,
                    new.id,
                    new.chain_type_name,
                    text,
                    new.chain_trace_context,
                    new.trace_context,
                    new.priority,
                    new.limit_key,
                )
            )
        args.append(prepared[0][0].id)
        sql = self.sql.sized(
            "insert_now",
            len(prepared),
            lambda n: (
                "INSERT INTO {job} (id, type_name, chain_id, chain_type_name, chain_index, "
                "input, created_at, scheduled_at, chain_trace_context, trace_context, priority, "
                "limit_key) VALUES "
                + ", ".join([f"(%s, %s, %s, %s, 0, %s, {NOW}, {NOW}, %s, %s, %s, %s)"] * n)
                + "; SELECT created_at FROM {job} WHERE id = %s"
            ),
        )
        try:
            rows = await self._fetch_many(sql, args, tx, expected=DUPLICATE_KEY)
        except Exception as exc:
            if error_code(exc) != DUPLICATE_KEY:
                raise
            ids = [new.id for new, _ in prepared]
            taken = {job.id for job in await self._jobs_by_ids(ids, tx)}
            for job_id in ids:
                if job_id in taken:
                    raise DuplicateJobIdError(job_id) from None
            raise
        now = utc(rows[0][0])
        return [
            CreatedJob(
                job=inserted_job(
                    new, input=new.input, created_at=now, scheduled_at=now, status="ready"
                ),
                deduplicated=False,
            )
            for new, _ in prepared
        ]

    async def _positions(
        self, prepared: list[tuple[NewJob, str]], tx: TxT | None
    ) -> dict[tuple[str, int], StoredJob]:
        """The jobs already at the positions of the batch's continuations; a continuation of a
        chain that does not exist raises :class:`ChainNotFoundError`."""
        conts = [new for new, _ in prepared if new.chain_id is not None]
        if not conts:
            return {}
        chains = list(dict.fromkeys(new.chain_id for new in conts if new.chain_id is not None))
        pairs = [(new.chain_id, new.chain_index) for new in conts]
        sql = self.sql.sized(
            f"positions{len(chains)}",
            len(pairs),
            lambda n: (
                f"SELECT 0, {cols('j')} FROM {{job}} j WHERE (j.chain_id, j.chain_index) IN "
                f"({', '.join(['(%s, %s)'] * n)}) UNION ALL "
                f"SELECT 1, j.id, {', '.join(['NULL'] * (NCOLS - 1))} FROM {{job}} j "
                f"WHERE j.id IN ({marks(len(chains))}) AND j.chain_index = 0"
            ),
        )
        args = [value for pair in pairs for value in pair] + chains
        existing: dict[tuple[str, int], StoredJob] = {}
        roots: set[str] = set()
        for row in await self._fetch(sql, args, tx):
            if row[0] == 1:
                roots.add(row[1])
            else:
                job = job_from_row(row, 1)
                existing[(job.chain_id, job.chain_index)] = job
        for new in conts:
            assert new.chain_id is not None
            if new.chain_id not in roots:
                raise ChainNotFoundError(new.chain_id)
        return existing

    async def _deduplication(
        self, prepared: list[tuple[NewJob, str]], now: datetime, tx: TxT | None
    ) -> tuple[dict[tuple[str, str], int], dict[int, StoredJob]]:
        """Per (chain type, key), the position of its first job in the batch (the leader), and per
        leader the newest stored chain it matches. Creators of the same key are serialised by the
        rows of the dedup-lock table (written before the look-up, in key order)."""
        leaders: dict[tuple[str, str], int] = {}
        parts: list[str] = []
        args: list[Any] = []
        for i, (new, _) in enumerate(prepared):
            dedup = new.deduplication
            if new.chain_id is not None or dedup is None:
                continue
            key = (new.chain_type_name, dedup.key)
            if key in leaders:
                continue
            leaders[key] = i
            conds = ["r.chain_type_name = %s", "r.deduplication_key = %s", "r.chain_index = 0"]
            part_args: list[Any] = [i, new.chain_type_name, dedup.key]
            if dedup.window is not None:
                try:
                    since = now - dedup.window
                except OverflowError:
                    since = None
                if since is not None:
                    conds.append("r.created_at >= %s")
                    part_args.append(naive(since))
            if dedup.exclude_chain_ids:
                conds.append(f"r.id NOT IN ({marks(len(dedup.exclude_chain_ids))})")
                part_args.extend(dedup.exclude_chain_ids)
            if dedup.scope != "any":
                conds.append(chain_open("r.id"))
            parts.append(
                f"(SELECT %s, {cols('r')} FROM {{job}} r WHERE {' AND '.join(conds)} "
                "ORDER BY r.created_at DESC, r.id DESC LIMIT 1)"
            )
            args.extend(part_args)
        matched: dict[int, StoredJob] = {}
        if not parts:
            return leaders, matched
        keys = sorted({self._dedup_lock_key(t, k) for t, k in leaders})
        await self._fetch(
            self.sql.sized(
                "dedup_lock",
                len(keys),
                lambda n: (
                    "INSERT INTO {dedup_lock} (lock_key) VALUES "
                    + ", ".join(["(UNHEX(%s))"] * n)
                    + " ON DUPLICATE KEY UPDATE lock_key = lock_key"
                ),
            ),
            keys,
            tx,
        )
        sql = self.sql.render(" UNION ALL ".join(parts))
        for row in await self._fetch(sql, args, tx):
            matched[row[0]] = job_from_row(row, 1)
        return leaders, matched

    async def add_blockers(
        self,
        links: Sequence[tuple[str, Sequence[str]]],
        *,
        trace_contexts: Sequence[Sequence[str | None]] | None = None,
        tx: TxT | None = None,
    ) -> list[BlockersAdded]:
        self._check_open()
        if not links:
            return []
        plan: list[tuple[str, list[str], list[str | None]]] = []
        for i, (job_id, chain_ids) in enumerate(links):
            chains = list(chain_ids)
            contexts: list[str | None] = (
                list(trace_contexts[i]) if trace_contexts is not None else [None] * len(chains)
            )
            plan.append((job_id, chains, contexts))
        return await self._in_tx(tx, lambda t: self._add_blockers(plan, t))

    async def _lock_chains(
        self, chain_ids: list[str], tx: TxT
    ) -> dict[str, tuple[bool, str | None]]:
        """Lock every job of these chains (in id order) and return, per chain that exists, whether
        it is open and its trace context. Follows a chain whose tail continued while we waited."""
        if not chain_ids:
            return {}
        sql = self.sql.sized(
            "lock_chains",
            len(chain_ids),
            lambda n: (
                "SELECT j.chain_id, j.chain_index, j.id, j.outcome, j.succeeded_by_job_id, "
                f"j.chain_trace_context FROM {{job}} j {BY_CHAIN} WHERE j.chain_id IN ({marks(n)}) "
                "FOR UPDATE"
            ),
        )
        for _ in range(_MAX_FOLLOW):
            rows = await self._fetch(sql, chain_ids, tx)
            roots: dict[str, str | None] = {}
            tails: dict[str, Row] = {}
            ids = {row[2] for row in rows}
            for row in rows:
                chain_id, index = row[0], row[1]
                if index == 0 and row[2] == chain_id:
                    roots[chain_id] = row[5]
                tail = tails.get(chain_id)
                if tail is None or index > tail[1]:
                    tails[chain_id] = row
            if any(
                tail[3] is not None and tail[4] is not None and tail[4] not in ids
                for tail in tails.values()
            ):
                continue  # a continuation committed while we waited for the lock: read again
            return {
                chain_id: (tails[chain_id][3] is None or tails[chain_id][4] is not None, context)
                for chain_id, context in roots.items()
            }
        raise AssertionError("a blocker chain kept continuing")  # pragma: no cover

    async def _add_blockers(
        self, plan: list[tuple[str, list[str], list[str | None]]], tx: TxT
    ) -> list[BlockersAdded]:
        job_ids = list(dict.fromkeys(job_id for job_id, _, _ in plan))
        chain_ids = sorted({c for _, chains, _ in plan for c in chains})
        chains = await self._lock_chains(chain_ids, tx)
        found = {
            row[0]
            for row in await self._fetch(
                self.sql.sized(
                    "lock_jobs",
                    len(job_ids),
                    lambda n: (
                        f"SELECT id FROM {{job}} WHERE id IN ({marks(n)}) ORDER BY id FOR UPDATE"
                    ),
                ),
                sorted(job_ids),
                tx,
            )
        }
        for job_id, chain_list, _ in plan:
            if job_id not in found:
                raise JobNotFoundError(job_id)
            for chain_id in chain_list:
                if chain_id not in chains:
                    raise ChainNotFoundError(chain_id)
        next_slot: dict[str, int] = {}
        linked: set[tuple[str, str]] = set()
        for job_id, slot, chain_id in await self._fetch(
            self.sql.sized(
                "links_of",
                len(job_ids),
                lambda n: (
                    f"SELECT job_id, slot, blocked_by_chain_id FROM {{blocker}} "
                    f"WHERE job_id IN ({marks(n)})"
                ),
            ),
            job_ids,
            tx,
        ):
            next_slot[job_id] = max(next_slot.get(job_id, 0), slot + 1)
            linked.add((job_id, chain_id))
        link_rows: list[Any] = []
        increments: dict[str, int] = {}
        opened: list[tuple[list[str], list[str | None]]] = []
        for job_id, chain_list, contexts in plan:
            slot = next_slot.get(job_id, 0)
            open_ids: list[str] = []
            chain_contexts: list[str | None] = []
            for chain_id, context in zip(chain_list, contexts, strict=True):
                link_rows.extend((job_id, slot, chain_id, context))
                slot += 1
                is_open, chain_context = chains[chain_id]
                chain_contexts.append(chain_context)
                if is_open and chain_id not in open_ids:
                    open_ids.append(chain_id)
                if is_open and (job_id, chain_id) not in linked:
                    increments[job_id] = increments.get(job_id, 0) + 1
                linked.add((job_id, chain_id))
            next_slot[job_id] = slot
            opened.append((open_ids, chain_contexts))
        if link_rows:
            count = len(link_rows) // 4
            await self._execute(
                self.sql.sized(
                    "insert_links",
                    count,
                    lambda n: (
                        "INSERT INTO {blocker} (job_id, slot, blocked_by_chain_id, "
                        "trace_context) VALUES " + ", ".join(["(%s, %s, %s, %s)"] * n)
                    ),
                ),
                link_rows,
                tx,
            )
        if increments:
            ids = list(increments)
            await self._execute(
                self.sql.sized(
                    "add_open_blockers",
                    len(ids),
                    lambda n: (
                        "UPDATE {job} SET open_blockers = open_blockers + CASE id "
                        + " ".join(["WHEN %s THEN %s"] * n)
                        + f" ELSE 0 END WHERE id IN ({marks(n)})"
                    ),
                ),
                [v for job_id in ids for v in (job_id, increments[job_id])] + ids,
                tx,
            )
        jobs = {job.id: job for job in await self._jobs_by_ids(job_ids, tx)}
        return [
            BlockersAdded(
                job=jobs[job_id], open_blocker_chain_ids=open_ids, blocker_chain_trace_contexts=ctx
            )
            for (job_id, _, _), (open_ids, ctx) in zip(plan, opened, strict=True)
        ]

    async def _jobs_by_ids(self, ids: Sequence[str], tx: TxT | None) -> list[StoredJob]:
        if not ids:
            return []
        sql = self.sql.sized(
            "jobs_by_ids",
            len(ids),
            lambda n: f"SELECT {cols('j')} FROM {{job}} j WHERE j.id IN ({marks(n)})",
        )
        return [job_from_row(row) for row in await self._fetch(sql, list(ids), tx)]

    # -- reading ----------------------------------------------------------------------------------

    async def get_job(
        self, job_id: str, *, lock: bool = False, tx: TxT | None = None
    ) -> StoredJob | None:
        self._check_open()
        sql = self.sql.get_job_locked if lock and tx is not None else self.sql.get_job
        rows = await self._fetch(sql, (job_id,), tx)
        return job_from_row(rows[0]) if rows else None

    async def get_chain(
        self, chain_id: str, *, lock: bool = False, tx: TxT | None = None
    ) -> StoredChain | None:
        self._check_open()
        if lock and tx is not None:
            for _ in range(_MAX_FOLLOW):
                rows = await self._fetch(self.sql.tail_id, (chain_id, chain_id), tx)
                if not rows:
                    return None
                locked = await self._fetch(self.sql.get_job_locked, (rows[0][0],), tx)
                if not locked:
                    continue  # deleted meanwhile: look again
                tail = job_from_row(locked[0])
                if tail.outcome is not None and tail.succeeded_by_job_id is not None:
                    continue  # it continued while we waited for the lock: lock the new tail
                if tail.id == chain_id:
                    return StoredChain(root=tail, tail=tail)
                root = await self.get_job(chain_id, tx=tx)
                if root is None:
                    return None
                return StoredChain(root=root, tail=tail)
            raise AssertionError("the chain kept continuing")  # pragma: no cover
        rows = await self._fetch(self.sql.get_chain, (chain_id,), tx)
        return chain_from_row(rows[0]) if rows else None

    async def get_job_blockers(self, job_id: str, *, tx: TxT | None = None) -> list[StoredChain]:
        self._check_open()
        rows = await self._fetch(self.sql.get_job_blockers, (job_id,), tx)
        return [chain_from_row(row) for row in rows]

    async def next_due(
        self, type_names: Sequence[str], *, tx: TxT | None = None
    ) -> timedelta | None:
        self._check_open()
        types = list(dict.fromkeys(type_names))
        if not types:
            return None
        # next_due_round walks job_claim_idx one distinct priority at a time: each round reads,
        # per type, the first unlocked ready job of the highest priority below the type's bound
        # (the earliest due time of that priority). The earliest of all rounds is the answer; a
        # round that finds a job already due ends the walk, so a busy queue takes one round.
        bounds: list[tuple[str, int]] = [(t, ABOVE_PRIORITIES) for t in types]
        earliest: datetime | None = None
        now: datetime | None = None
        while bounds:
            sql = self.sql.sized("next_due", len(bounds), next_due_round)
            rows = await self._fetch(sql, [arg for bound in bounds for arg in bound], tx)
            lower: list[tuple[str, int]] = []
            for position, priority, due, read_at in rows:
                now = read_at
                if not isinstance(due, datetime):
                    return timedelta(0)  # a zero date (edited by hand) is due: a claim fails it
                if earliest is None or due < earliest:
                    earliest = due
                lower.append((bounds[int(position)][0], int(priority)))
            if earliest is not None and now is not None and earliest <= now:
                return timedelta(0)
            bounds = lower
        if earliest is None or now is None:
            return None
        return max(earliest - now, timedelta(0))

    async def get_queue_stats(
        self, type_names: Sequence[str] | None = None, *, tx: TxT | None = None
    ) -> list[QueueStats]:
        self._check_open()
        if type_names is None:
            rows = await self._fetch(self.sql.queue_stats, (), tx)
        elif not type_names:
            return []
        else:
            types = sorted(set(type_names))
            sql = self.sql.sized("queue_stats", len(types), queue_stats)
            rows = await self._fetch(sql, types * 3, tx)
        found: dict[str, dict[str, Any]] = {}
        for kind, type_name, first, second, age in rows:
            entry = found.setdefault(type_name, {})
            if kind == 0:
                entry["ready"], entry["scheduled"] = int(first), int(second)
                if age is not None:
                    entry["oldest_ready_age"] = timedelta(microseconds=max(int(age), 0))
            elif kind == 1:
                entry["running"], entry["lease_expired"] = int(first), int(second)
            else:
                entry["blocked"] = int(first)
        return queue_stats_in_order(
            [QueueStats(name, **entry) for name, entry in found.items()], type_names
        )

    async def get_job_activity(
        self, *, window: timedelta, buckets: int, tx: TxT | None = None
    ) -> JobActivity:
        self._check_open()
        micros = _micros(window)
        rows = await self._fetch(self.sql.job_activity, (micros, buckets, micros), tx)
        now: datetime | None = None
        counts: list[StatusCount] = []
        closed: dict[tuple[int, str], int] = {}
        workers: list[WorkerActivity] = []
        for kind, name, status, n, index, moment in rows:
            if kind == "c":
                counts.append(StatusCount(name, status, int(n)))
            elif kind == "b":
                closed[(int(index), status)] = int(n)
            elif kind == "w":
                workers.append(WorkerActivity(name, int(n), utc(moment)))
            else:
                now = utc(moment)
        assert now is not None
        since = now - window
        counts.sort(key=lambda c: (c.type_name, c.status))
        workers.sort(key=lambda w: w.worker_id)
        return JobActivity(
            now=now,
            since=since,
            counts=counts,
            buckets=activity_buckets(since, window, buckets, closed),
            workers=workers,
        )

    async def list_chains(
        self,
        filter: ChainFilter,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[StoredChain]:
        self._check_open()
        desc = order == "desc"
        after = decode_chains_cursor(cursor) if cursor is not None else None
        where = Where("r", "r.chain_index = 0")
        where.one_of("r.type_name", filter.type_names)
        where.one_of("r.id", filter.chain_ids)
        if filter.job_ids is not None:
            if filter.job_ids:
                where.add(
                    f"r.id IN (SELECT m.chain_id FROM {{job}} m "
                    f"WHERE m.id IN ({marks(len(filter.job_ids))}))",
                    *filter.job_ids,
                )
            else:
                where.add("FALSE")
        if filter.status is not None:
            closed = "t.outcome IS NOT NULL AND t.succeeded_by_job_id IS NULL"
            where.add(closed if filter.status == "closed" else f"NOT ({closed})")
        if filter.root_only:
            where.add("NOT EXISTS (SELECT 1 FROM {blocker} b WHERE b.blocked_by_chain_id = r.id)")
        where.one_of("r.deduplication_key", filter.deduplication_keys)
        where.created_between(filter.created_from, filter.created_to)
        select = f"SELECT {cols('r')}, {cols('t')} FROM {{job}} r {tail_join('r', 't')}"
        sql = self.sql.render(where.page(select, after, desc, fetch_size(limit)))
        rows = await self._fetch(sql, where.args, tx)
        return chains_page([chain_from_row(row) for row in rows], limit)

    async def list_jobs(
        self,
        filter: JobFilter,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[StoredJob]:
        self._check_open()
        desc = order == "desc"
        after = decode_jobs_cursor(cursor) if cursor is not None else None
        where = Where("j")
        where.one_of("j.type_name", filter.type_names)
        where.one_of(f"({status_sql('j')})", filter.statuses)
        where.one_of("j.id", filter.job_ids)
        where.one_of("j.chain_id", filter.chain_ids)
        where.one_of("j.chain_type_name", filter.chain_type_names)
        where.created_between(filter.created_from, filter.created_to)
        sql = self.sql.render(
            where.page(f"SELECT {cols('j')} FROM {{job}} j", after, desc, fetch_size(limit))
        )
        rows = await self._fetch(sql, where.args, tx)
        return jobs_page([job_from_row(row) for row in rows], limit)

    async def list_chain_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "asc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[StoredJob]:
        self._check_open()
        desc = order == "desc"
        after = decode_chain_jobs_cursor(cursor) if cursor is not None else None
        where = ["j.chain_id = %s"]
        args: list[Any] = [chain_id]
        if after is not None:
            where.append(f"j.chain_index {'<' if desc else '>'} %s")
            args.append(after)
        direction = "DESC" if desc else "ASC"
        sql = self.sql.render(
            f"SELECT {cols('j')} FROM {{job}} j WHERE {' AND '.join(where)} "
            f"ORDER BY j.chain_index {direction} LIMIT {fetch_size(limit)}"
        )
        rows = await self._fetch(sql, args, tx)
        return chain_jobs_page([job_from_row(row) for row in rows], limit)

    async def list_blocked_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[StoredJob]:
        self._check_open()
        desc = order == "desc"
        after = decode_blocked_jobs_cursor(cursor) if cursor is not None else None
        where = Where(
            "j",
            "j.id IN (SELECT b.job_id FROM {blocker} b WHERE b.blocked_by_chain_id = %s)",
            chain_id,
        )
        sql = self.sql.render(
            where.page(f"SELECT {cols('j')} FROM {{job}} j", after, desc, fetch_size(limit))
        )
        rows = await self._fetch(sql, where.args, tx)
        return blocked_jobs_page([job_from_row(row) for row in rows], limit)

    # -- processing -------------------------------------------------------------------------------

    async def claim_jobs(
        self,
        *,
        leases: Mapping[str, timedelta],
        limit: int,
        worker_id: str,
        limits: Mapping[str, ConcurrencyLimit] | None = None,
        tx: TxT | None = None,
    ) -> ClaimResult:
        self._check_open()
        if not leases:
            return ClaimResult(jobs=[], has_more=False)
        types = list(leases)
        bounds = {t: b for t, b in (limits or {}).items() if t in leases and b.is_set}
        if bounds:
            return await self._in_tx(
                tx, lambda t: self._claim_limited(types, leases, limit, worker_id, bounds, t)
            )
        return await self._in_tx(tx, lambda t: self._claim(types, leases, limit, worker_id, t))

    async def _claim(
        self,
        types: list[str],
        leases: Mapping[str, timedelta],
        limit: int,
        worker_id: str,
        tx: TxT,
    ) -> ClaimResult:
        take = max(limit, 0)
        # Each type walks its own claim index in order (highest priority, then oldest) and locks at
        # most limit + 1 rows, skipping rows other transactions hold; the union is cut to the first
        # limit + 1 in the same order.
        sql = self.sql.sized(
            "claim",
            len(types),
            lambda n: (
                " UNION ALL ".join(
                    [
                        f"(SELECT {cols('j')}, {NOW} FROM {{job}} j FORCE INDEX (`{{p}}job_claim_idx`) "
                        f"WHERE j.ready_type = %s AND j.scheduled_at <= {NOW} "
                        "ORDER BY j.priority DESC, j.scheduled_at, j.id "
                        "LIMIT %s FOR UPDATE SKIP LOCKED)"
                    ]
                    * n
                )
                + (" ORDER BY 23 DESC, 10, 1" if n > 1 else "")
            ),
        )
        args: list[Any] = []
        for type_name in types:
            args.extend((type_name, take + 1))
        rows = await self._fetch(sql, args, tx)
        has_more = len(rows) > take
        return await self._lease(rows[:take], has_more, leases, worker_id, tx)

    async def _claim_limited(
        self,
        types: list[str],
        leases: Mapping[str, timedelta],
        limit: int,
        worker_id: str,
        bounds: dict[str, ConcurrencyLimit],
        tx: TxT,
    ) -> ClaimResult:
        """A claim under concurrency limits. It first writes the row of each limited type in
        ``job_limit`` (in one order, so claimers never wait on each other in a cycle): a concurrent
        limited claim of the same type waits there until this one commits. Then it counts the
        running jobs by (type, key) (READ COMMITTED: every statement sees the latest commits),
        locks ready candidates in claim order (skipping full types and keys) and takes those that
        fit (:func:`~queuert.limits.take_within_limits`)."""
        take = max(limit, 0)
        limited = sorted(bounds)
        await self._execute(
            self.sql.sized(
                "job_limit_lock",
                len(limited),
                lambda n: (
                    "INSERT INTO {job_limit} (type_name, claims) VALUES "
                    + ", ".join(["(%s, 1)"] * n)
                    + " ON DUPLICATE KEY UPDATE claims = claims + 1"
                ),
            ),
            limited,
            tx,
        )
        running_types: dict[str, int] = {}
        running_keys: dict[tuple[str, str], int] = {}
        counted = await self._fetch(
            self.sql.sized(
                "running_by_key",
                len(limited),
                lambda n: (
                    "SELECT CONVERT(j.leased_type USING utf8mb4), j.limit_key, COUNT(*) "
                    f"FROM {{job}} j WHERE j.leased_type IN ({marks(n)}) "
                    "GROUP BY j.leased_type, j.limit_key"
                ),
            ),
            limited,
            tx,
        )
        for type_name, key, count in counted:
            running_types[type_name] = running_types.get(type_name, 0) + count
            if key is not None:
                running_keys[(type_name, key)] = count
        parts: list[str] = []
        args: list[Any] = []
        windows: dict[str, int] = {}
        for type_name in types:
            bound = bounds.get(type_name)
            if bound is None:
                windows[type_name] = take + 1
            elif bound.limit is not None and running_types.get(type_name, 0) >= bound.limit:
                continue  # full: none of its jobs fits
            else:
                # only a key limit skips candidates: only then look further than take + 1
                windows[type_name] = 4 * take + 1 if bound.key_limit is not None else take + 1
            full = (
                [k for (t, k), n in running_keys.items() if t == type_name and n >= bound.key_limit]
                if bound is not None and bound.key_limit is not None
                else []
            )
            skip = f"AND (j.limit_key IS NULL OR j.limit_key NOT IN ({marks(len(full))})) "
            parts.append(
                f"(SELECT {cols('j')}, {NOW} FROM {{job}} j FORCE INDEX (`{{p}}job_claim_idx`) "
                f"WHERE j.ready_type = %s AND j.scheduled_at <= {NOW} "
                + (skip if full else "")
                + "ORDER BY j.priority DESC, j.scheduled_at, j.id LIMIT %s FOR UPDATE SKIP LOCKED)"
            )
            args.extend((type_name, *full, windows[type_name]))
        if not parts:
            return ClaimResult(jobs=[], has_more=False)
        rows = await self._fetch(self.sql.render(" UNION ALL ".join(parts)), args, tx)
        rows.sort(key=lambda r: (-r[_PRIORITY], r[_SCHEDULED_AT], r[0]))
        taken, has_more = take_within_limits(
            ((r[1], r[_LIMIT_KEY], r) for r in rows),
            limits=bounds,
            running_types=running_types,
            running_keys=running_keys,
            want=take,
        )
        # a type whose window filled may have jobs that fit behind it (the next claim skips the
        # keys this one filled), unless its own limit is reached now
        seen = Counter(r[1] for r in rows)
        now_running = Counter(r[1] for r in taken)
        for type_name, n in seen.items():
            bound = bounds.get(type_name)
            at_limit = (
                bound is not None
                and bound.limit is not None
                and running_types.get(type_name, 0) + now_running[type_name] >= bound.limit
            )
            if n >= windows[type_name] and not at_limit:
                has_more = True
        return await self._lease(taken, has_more, leases, worker_id, tx)

    async def _lease(
        self,
        rows: list[Row],
        has_more: bool,
        leases: Mapping[str, timedelta],
        worker_id: str,
        tx: TxT,
    ) -> ClaimResult:
        """Lease the claimed candidate ``rows`` (their job columns, then the statement's now)."""
        types = list(leases)
        if not rows:
            return ClaimResult(jobs=[], has_more=has_more)
        now = rows[0][NCOLS]
        untils = {t: naive(_until(utc(now), leases[t])) for t in types}
        ids = [row[0] for row in rows]
        used = list(dict.fromkeys(row[1] for row in rows))
        await self._execute(
            self.sql.sized(
                f"claim_update{len(used)}",
                len(ids),
                lambda n: (
                    "UPDATE {job} SET attempt = attempt + 1, last_attempt_at = %s, "
                    "leased_by = %s, leased_until = CASE type_name "
                    + " ".join(["WHEN %s THEN %s"] * len(used))
                    + f" END WHERE id IN ({marks(n)})"
                ),
            ),
            [now, worker_id, *[v for t in used for v in (t, untils[t])], *ids],
            tx,
        )
        at = utc(now)
        jobs: list[StoredJob] = []
        for row in rows:
            job = job_from_row(row)
            fields = job.__dict__.copy()
            fields.update(
                attempt=job.attempt + 1,
                last_attempt_at=at,
                leased_by=worker_id,
                leased_until=utc(untils[job.type_name]),
                status="running",
            )
            claimed: StoredJob = object.__new__(StoredJob)
            claimed.__dict__.update(fields)
            jobs.append(claimed)
        return ClaimResult(jobs=jobs, has_more=has_more)

    async def renew_leases(
        self, leases: Mapping[str, timedelta], *, worker_id: str, tx: TxT | None = None
    ) -> LeaseRenewal:
        self._check_open()
        if not leases:
            return LeaseRenewal(renewed={}, lost=[])
        return await self._in_tx(tx, lambda t: self._renew(leases, worker_id, t))

    async def _renew(
        self, leases: Mapping[str, timedelta], worker_id: str, tx: TxT
    ) -> LeaseRenewal:
        ids = list(leases)
        held = (
            "j.leased_by = %s AND j.outcome IS NULL AND j.leased_until IS NOT NULL "
            "AND j.id IN ({ids})"
        )
        # mine: every lease the worker holds; free: those not locked by another transaction right
        # now (typically the worker's own atomic attempt, which holds its job for the whole
        # handler). A locked one is reported neither renewed nor lost: waiting for it would stall
        # every other lease of the worker behind that one transaction.
        sql = self.sql.sized(
            "renew_select",
            len(ids),
            lambda n: (
                f"(SELECT 0, j.id, {NOW} FROM {{job}} j WHERE "
                + held.replace("{ids}", marks(n))
                + f") UNION ALL (SELECT 1, j.id, {NOW} FROM {{job}} j WHERE "
                + held.replace("{ids}", marks(n))
                + " ORDER BY j.id FOR UPDATE SKIP LOCKED)"
            ),
        )
        rows = await self._fetch(sql, [worker_id, *ids, worker_id, *ids], tx)
        mine = {row[1] for row in rows if row[0] == 0}
        free = [row[1] for row in rows if row[0] == 1]
        renewed: dict[str, datetime] = {}
        if free:
            now = utc(rows[0][2])
            untils = {job_id: _until(now, leases[job_id]) for job_id in free}
            await self._execute(
                self.sql.sized(
                    "renew_update",
                    len(free),
                    lambda n: (
                        "UPDATE {job} SET leased_until = CASE id "
                        + " ".join(["WHEN %s THEN %s"] * n)
                        + f" END WHERE id IN ({marks(n)})"
                    ),
                ),
                [*[v for j in free for v in (j, naive(untils[j]))], *free],
                tx,
            )
            renewed = {job_id: untils[job_id] for job_id in ids if job_id in untils}
        busy = mine.difference(renewed)
        return LeaseRenewal(
            renewed=renewed, lost=[j for j in ids if j not in renewed and j not in busy]
        )

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
        tx: TxT | None = None,
    ) -> CompleteResult:
        self._check_open()
        completion = Completion(job_id, outcome, output, succeeded_by_job_id, error)
        results, refusals = await self._in_tx(
            tx, lambda t: self._complete([completion], worker_id, owner, t)
        )
        result = results[0]
        if result is not None:
            return result
        found, closed_as, leased_by = refusals[0]
        if not found:
            raise JobNotFoundError(job_id)
        if closed_as is not None:
            raise JobAlreadyCompletedError(job_id)
        raise JobTakenByAnotherWorkerError(job_id, owner, leased_by)

    async def complete_jobs(
        self,
        completions: Sequence[Completion],
        *,
        worker_id: str | None,
        owner: str | None = None,
        tx: TxT | None = None,
    ) -> list[CompleteResult | None]:
        self._check_open()
        if not completions:
            return []
        results, _ = await self._in_tx(
            tx, lambda t: self._complete(completions, worker_id, owner, t)
        )
        return results

    async def _complete(
        self,
        completions: Sequence[Completion],
        worker_id: str | None,
        owner: str | None,
        tx: TxT,
    ) -> tuple[list[CompleteResult | None], dict[int, tuple[bool, str | None, str | None]]]:
        """Close jobs: lock them, close those that may be closed, then release the jobs that
        waited for the chains they closed. Returns one result per completion (``None`` when
        refused) and, per refused position, (row found, its outcome, its lease holder)."""
        ids = [c.job_id for c in completions]
        rows = await self._fetch(
            self.sql.sized(
                "complete_lock",
                len(ids),
                lambda n: (
                    f"SELECT {cols('j')}, {NOW} FROM {{job}} j WHERE j.id IN ({marks(n)}) "
                    "ORDER BY j.id FOR UPDATE"
                ),
            ),
            sorted(ids),
            tx,
        )
        current = {row[0]: row for row in rows}
        refusals: dict[int, tuple[bool, str | None, str | None]] = {}
        ok: list[tuple[int, Completion, StoredJob]] = []
        for i, c in enumerate(completions):
            row = current.get(c.job_id)
            if row is None:
                refusals[i] = (False, None, None)
                continue
            job = job_from_row(row)
            if job.outcome is not None or (owner is not None and job.leased_by != owner):
                refusals[i] = (True, job.outcome, job.leased_by)
                continue
            ok.append((i, c, job))
        results: list[CompleteResult | None] = [None] * len(completions)
        if not ok:
            return results, refusals
        now = rows[0][NCOLS]
        at = utc(now)
        n = len(ok)
        errors = [c for _, c, _ in ok if c.outcome != "completed"]
        args: list[Any] = []
        for _, c, _ in ok:
            args.extend((c.job_id, c.outcome))
        for _, c, _ in ok:
            args.extend((c.job_id, c.output_json() if c.closes_with_output else None))
        for _, c, _ in ok:
            args.extend((c.job_id, c.succeeded_by_job_id))
        for c in errors:
            args.extend((c.job_id, c.error))
        args.extend((now, worker_id))
        args.extend(c.job_id for _, c, _ in ok)
        await self._execute(
            self.sql.sized(
                f"complete_update{len(errors)}",
                n,
                lambda n: (
                    "UPDATE {job} SET "
                    f"outcome = CASE id {' '.join(['WHEN %s THEN %s'] * n)} END, "
                    f"output = CASE id {' '.join(['WHEN %s THEN %s'] * n)} END, "
                    f"succeeded_by_job_id = CASE id {' '.join(['WHEN %s THEN %s'] * n)} END, "
                    + (
                        "last_attempt_error = CASE id "
                        + " ".join(["WHEN %s THEN COALESCE(%s, last_attempt_error)"] * len(errors))
                        + " ELSE NULL END, "
                        if errors
                        else "last_attempt_error = NULL, "
                    )
                    + "completed_at = %s, completed_by = %s, leased_by = NULL, leased_until = NULL "
                    f"WHERE id IN ({marks(n)})"
                ),
            ),
            args,
            tx,
        )
        closing: dict[str, int] = {}  # chain -> position of the completion that closes it
        for i, c, job in ok:
            closed = dict(job.__dict__)
            closed.update(
                outcome=c.outcome,
                output=c.output if c.closes_with_output else None,
                succeeded_by_job_id=c.succeeded_by_job_id,
                completed_at=at,
                completed_by=worker_id,
                leased_by=None,
                leased_until=None,
                last_attempt_error=(
                    None if c.outcome == "completed" else (c.error or job.last_attempt_error)
                ),
                status="continued" if c.succeeded_by_job_id is not None else c.outcome,
            )
            stored: StoredJob = object.__new__(StoredJob)
            stored.__dict__.update(closed)
            results[i] = CompleteResult(job=stored)
            if c.succeeded_by_job_id is None:
                closing[job.chain_id] = i
        if closing:
            await self._release(closing, results, now, tx)
        return results, refusals

    async def _release(
        self,
        closing: dict[str, int],
        results: list[CompleteResult | None],
        now: datetime,
        tx: TxT,
    ) -> None:
        """The chains of ``closing`` were closed by these completions (if the closed job is their
        tail): release the jobs that waited for them and have no other open blocker chain."""
        chains = list(closing)
        # Statements after the lock on the closed tail: they see every link committed before it.
        rows = await self._fetch(
            self.sql.sized(
                "closing_links",
                len(chains),
                lambda n: (
                    "SELECT 0, b.blocked_by_chain_id, b.job_id, b.trace_context, NULL "
                    f"FROM {{blocker}} b WHERE b.blocked_by_chain_id IN ({marks(n)}) "
                    "UNION ALL SELECT 1, h.chain_id, NULL, NULL, MAX(h.chain_index) FROM {job} h "
                    f"WHERE h.chain_id IN ({marks(n)}) GROUP BY h.chain_id"
                ),
            ),
            chains + chains,
            tx,
        )
        tails = {row[1]: row[4] for row in rows if row[0] == 1}
        links = [row for row in rows if row[0] == 0]
        if not links:
            return
        closed_jobs = {chain: results[i] for chain, i in closing.items() if results[i] is not None}
        really = {
            chain
            for chain, result in closed_jobs.items()
            if result is not None and tails.get(chain) == result.job.chain_index
        }
        per_job: dict[str, set[str]] = {}
        by: dict[str, int] = {}
        contexts: dict[int, list[str]] = {}
        for _, chain, job_id, context, _ in links:
            if chain not in really:
                continue
            per_job.setdefault(job_id, set()).add(chain)
            by[job_id] = max(by.get(job_id, -1), closing[chain])
            if context is not None:
                contexts.setdefault(closing[chain], []).append(context)
        unblocked: dict[int, list[StoredJob]] = {}
        if per_job:
            deps = sorted(per_job)
            locked = await self._fetch(
                self.sql.sized(
                    "lock_dependents",
                    len(deps),
                    lambda n: (
                        "SELECT id, open_blockers, outcome FROM {job} "
                        f"WHERE id IN ({marks(n)}) ORDER BY id FOR UPDATE"
                    ),
                ),
                deps,
                tx,
            )
            groups: dict[int, list[str]] = {}
            freed: list[str] = []
            for job_id, open_blockers, outcome in locked:
                if open_blockers <= 0:
                    continue
                k = len(per_job[job_id])
                groups.setdefault(k, []).append(job_id)
                if open_blockers <= k and outcome is None:
                    freed.append(job_id)
            for k, group in groups.items():
                await self._execute(
                    self.sql.sized(
                        "unblock",
                        len(group),
                        lambda n: (
                            "UPDATE {job} SET scheduled_at = CASE WHEN open_blockers <= %s "
                            "THEN GREATEST(scheduled_at, %s) ELSE scheduled_at END, "
                            "open_blockers = GREATEST(open_blockers - %s, 0) "
                            f"WHERE id IN ({marks(n)})"
                        ),
                    ),
                    [k, now, k, *group],
                    tx,
                )
            for job in sorted(
                await self._jobs_by_ids(freed, tx), key=lambda j: (j.created_at, j.id)
            ):
                unblocked.setdefault(by[job.id], []).append(job)
        for i in set(closing.values()):
            result = results[i]
            if result is not None and (i in unblocked or i in contexts):
                results[i] = CompleteResult(
                    job=result.job,
                    unblocked=unblocked.get(i, []),
                    blocker_trace_contexts=contexts.get(i, []),
                )

    async def reschedule_job(
        self,
        job_id: str,
        *,
        schedule: Schedule | None,
        error: str | None,
        tx: TxT | None = None,
    ) -> StoredJob:
        self._check_open()

        async def op(t: TxT) -> StoredJob:
            now = await self._now(t)
            due = scheduled_at(schedule, now)
            await self._execute(self.sql.reschedule, (naive(due), error, job_id), t)
            rows = await self._fetch(self.sql.get_job, (job_id,), t)
            if not rows:
                raise JobNotFoundError(job_id)
            return job_from_row(rows[0])

        return await self._in_tx(tx, op)

    async def reap_expired_leases(
        self,
        type_names: Sequence[str],
        *,
        limit: int,
        exclude_job_ids: Sequence[str] = (),
        tx: TxT | None = None,
    ) -> list[StoredJob]:
        self._check_open()
        types = list(dict.fromkeys(type_names))
        if limit < 1 or not types:
            return []
        excluded = list(exclude_job_ids)
        return await self._in_tx(tx, lambda t: self._reap(types, limit, excluded, t))

    async def _reap(
        self, types: list[str], limit: int, excluded: list[str], tx: TxT
    ) -> list[StoredJob]:
        exclude = f"AND j.id NOT IN ({marks(len(excluded))}) " if excluded else ""
        part = (
            f"(SELECT {cols('j')}, {NOW} FROM {{job}} j WHERE j.leased_type = %s "
            f"AND j.leased_until <= {NOW} {exclude}"
            "ORDER BY j.leased_until, j.id LIMIT %s FOR UPDATE SKIP LOCKED)"
        )
        sql = self.sql.render(
            " UNION ALL ".join([part] * len(types)) + (" ORDER BY 18, 1" if len(types) > 1 else "")
        )
        args: list[Any] = []
        for type_name in types:
            args.extend((type_name, *excluded, limit))
        rows = (await self._fetch(sql, args, tx))[:limit]
        if not rows:
            return []
        ids = [row[0] for row in rows]
        await self._execute(
            self.sql.sized(
                "clear_leases",
                len(ids),
                lambda n: (
                    "UPDATE {job} SET leased_by = NULL, leased_until = NULL "
                    f"WHERE id IN ({marks(n)})"
                ),
            ),
            ids,
            tx,
        )
        now = utc(rows[0][NCOLS])
        reaped: list[StoredJob] = []
        for row in rows:
            job = job_from_row(row)
            status = derive_status(
                outcome=None,
                succeeded_by_job_id=None,
                leased_until=None,
                blocked=job.blocked,
                scheduled_at=job.scheduled_at,
                now=now,
            )
            reaped.append(replace(job, status=status))
        return reaped

    # -- administration ---------------------------------------------------------------------------

    async def trigger_jobs(self, job_ids: Sequence[str], *, tx: TxT | None = None) -> TriggerResult:
        self._check_open()
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return TriggerResult(triggered=[], not_found=[], not_triggerable=[])
        return await self._in_tx(tx, lambda t: self._trigger(ids, t))

    async def _trigger(self, ids: list[str], tx: TxT) -> TriggerResult:
        rows = await self._fetch(
            self.sql.sized(
                "trigger_lock",
                len(ids),
                lambda n: (
                    f"SELECT {cols('j')}, {NOW} FROM {{job}} j WHERE j.id IN ({marks(n)}) "
                    "ORDER BY j.id FOR UPDATE"
                ),
            ),
            sorted(ids),
            tx,
        )
        found = {row[0]: job_from_row(row) for row in rows}
        not_found = [i for i in ids if i not in found]
        not_triggerable: list[tuple[str, JobStatus]] = [
            (i, found[i].status)
            for i in ids
            if i in found and found[i].status not in ("scheduled", "ready")
        ]
        if not_found or not_triggerable:
            return TriggerResult(triggered=[], not_found=not_found, not_triggerable=not_triggerable)
        now = rows[0][NCOLS]
        await self._execute(
            self.sql.sized(
                "trigger",
                len(ids),
                lambda n: (
                    "UPDATE {job} SET scheduled_at = LEAST(scheduled_at, %s) "
                    f"WHERE id IN ({marks(n)})"
                ),
            ),
            [now, *ids],
            tx,
        )
        at = utc(now)
        triggered = []
        for i in ids:
            job = found[i]
            if job.scheduled_at > at:
                job = replace(job, scheduled_at=at, status="ready")
            triggered.append(job)
        return TriggerResult(triggered=triggered, not_found=[], not_triggerable=[])

    async def delete_chains(
        self, chain_ids: Sequence[str], *, cascade: bool = False, tx: TxT | None = None
    ) -> DeleteResult:
        self._check_open()
        ids = list(dict.fromkeys(chain_ids))
        if not ids:
            return DeleteResult(deleted=[], references=[])
        return await self._in_tx(tx, lambda t: self._delete(ids, cascade, t))

    async def _delete(self, ids: list[str], cascade: bool, tx: TxT) -> DeleteResult:
        targets: dict[str, None] = {
            row[0]: None
            for row in await self._fetch(
                self.sql.sized(
                    "chain_roots",
                    len(ids),
                    lambda n: (
                        f"SELECT id FROM {{job}} WHERE id IN ({marks(n)}) AND chain_index = 0"
                    ),
                ),
                ids,
                tx,
            )
        }
        if not targets:
            return DeleteResult(deleted=[], references=[])
        if cascade:
            frontier = list(targets)
            while frontier:
                rows = await self._fetch(
                    self.sql.sized(
                        "blocker_chains",
                        len(frontier),
                        lambda n: (
                            "SELECT DISTINCT b.blocked_by_chain_id FROM {job} m "
                            "JOIN {blocker} b ON b.job_id = m.id "
                            "JOIN {job} r ON r.id = b.blocked_by_chain_id AND r.chain_index = 0 "
                            f"WHERE m.chain_id IN ({marks(n)})"
                        ),
                    ),
                    frontier,
                    tx,
                )
                frontier = [row[0] for row in rows if row[0] not in targets]
                targets.update(dict.fromkeys(frontier))
        chain_list = sorted(targets)
        n = len(chain_list)
        await self._fetch(
            self.sql.sized(
                "lock_members",
                n,
                lambda n: (
                    f"SELECT id FROM {{job}} {BY_CHAIN} WHERE chain_id IN ({marks(n)}) FOR UPDATE"
                ),
            ),
            chain_list,
            tx,
        )
        references = [
            BlockerReference(chain_id=row[0], referenced_by_job_id=row[1])
            for row in await self._fetch(
                self.sql.sized(
                    "references",
                    n,
                    lambda n: (
                        "SELECT DISTINCT b.blocked_by_chain_id, b.job_id FROM {blocker} b "
                        "JOIN {job} d ON d.id = b.job_id "
                        f"WHERE b.blocked_by_chain_id IN ({marks(n)}) "
                        f"AND d.chain_id NOT IN ({marks(n)})"
                    ),
                ),
                chain_list + chain_list,
                tx,
            )
        ]
        if references:
            order = {c: i for i, c in enumerate(ids)}
            references.sort(
                key=lambda r: (
                    order.get(r.chain_id, len(order)),
                    r.chain_id,
                    r.referenced_by_job_id,
                )
            )
            return DeleteResult(deleted=[], references=references)
        deleted = [
            chain_from_row(row)
            for row in await self._fetch(
                self.sql.sized(
                    "chains_by_ids",
                    n,
                    lambda n: (
                        f"SELECT {cols('r')}, {cols('t')} FROM {{job}} r "
                        f"{tail_join('r', 't')} WHERE r.id IN ({marks(n)})"
                    ),
                ),
                chain_list,
                tx,
            )
        ]
        await self._execute(
            self.sql.sized(
                "delete_links",
                n,
                lambda n: (
                    "DELETE b FROM {blocker} b JOIN {job} m ON m.id = b.job_id "
                    f"WHERE m.chain_id IN ({marks(n)})"
                ),
            ),
            chain_list,
            tx,
        )
        await self._execute(
            self.sql.sized(
                "delete_jobs", n, lambda n: f"DELETE FROM {{job}} WHERE chain_id IN ({marks(n)})"
            ),
            chain_list,
            tx,
        )
        return DeleteResult(deleted=deleted, references=[])  # in no particular order


def _plan(
    prepared: list[tuple[NewJob, str]],
    existing: dict[tuple[str, int], StoredJob],
    leaders: dict[tuple[str, str], int],
    matched: dict[int, StoredJob],
    now: datetime,
) -> tuple[list[tuple[Any, ...]], list[CreatedJob]]:
    """In input order: each job's result, and the INSERT parameters of the jobs to insert."""
    rows: list[tuple[Any, ...]] = []
    results: list[CreatedJob] = []
    inserted_ids: set[str] = set()
    by_position: dict[int, StoredJob] = {}
    batch_at: dict[tuple[str, int], StoredJob] = {}
    created = naive(now)
    for i, (new, text) in enumerate(prepared):
        dedup = new.deduplication if new.chain_id is None else None
        if dedup is not None:
            leader = leaders[(new.chain_type_name, dedup.key)]
            if leader != i:
                results.append(CreatedJob(job=by_position[leader], deduplicated=True))
                continue
            found = matched.get(i)
            if found is not None:
                by_position[i] = found
                results.append(CreatedJob(job=found, deduplicated=True))
                continue
        if new.chain_id is not None:
            at = (new.chain_id, new.chain_index)
            earlier = existing.get(at) or batch_at.get(at)
            if earlier is not None:
                results.append(CreatedJob(job=earlier, deduplicated=True))
                continue
        if new.id in inserted_ids:
            raise DuplicateJobIdError(new.id)
        inserted_ids.add(new.id)
        due = scheduled_at(new.schedule, now)
        rows.append(
            (
                new.id,
                new.type_name,
                new.id if new.chain_id is None else new.chain_id,
                new.chain_type_name,
                new.chain_index,
                text,
                created,
                naive(due),
                dedup.key if dedup is not None else None,
                new.chain_trace_context,
                new.trace_context,
                new.priority,
                new.limit_key,
            )
        )
        job = inserted_job(
            new,
            input=new.input,
            created_at=now,
            scheduled_at=due,
            status="scheduled" if due > now else "ready",
        )
        by_position[i] = job
        if new.chain_id is not None:
            batch_at[(new.chain_id, new.chain_index)] = job
        results.append(CreatedJob(job=job, deduplicated=False))
    return rows, results


if TYPE_CHECKING:

    def _conforms(adapter: MysqlStateAdapter[Any]) -> StateAdapter[Any]:
        """mypy checks that the adapter implements the contract's protocol."""
        return adapter
