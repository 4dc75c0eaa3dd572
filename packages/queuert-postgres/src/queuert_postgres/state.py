"""``PgStateAdapter``: the PostgreSQL implementation of :class:`queuert.state.StateAdapter`."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from queuert.cursor import (
    decode_blocked_jobs_cursor,
    decode_chain_jobs_cursor,
    decode_chains_cursor,
    decode_jobs_cursor,
)
from queuert.duration import Duration
from queuert.errors import (
    BlockerReference,
    ChainNotFoundError,
    ConfigurationError,
    DuplicateJobIdError,
    JobAlreadyCompletedError,
    JobNotFoundError,
    JobTakenByAnotherWorkerError,
    StateAdapterClosedError,
    TransactionAbortedError,
)
from queuert.ids import UUID_IDS
from queuert.json import JsonValue
from queuert.limits import ConcurrencyLimit
from queuert.notify import Notifications, NotifyInTransaction
from queuert.opening import Opening
from queuert.paging import blocked_jobs_page, chain_jobs_page, chains_page, fetch_size, jobs_page
from queuert.schedule import Schedule
from queuert.state import (
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
    LeaseRenewal,
    MigrationResult,
    NewJob,
    Order,
    Outcome,
    Page,
    QueueStats,
    StatusCount,
    StorageExpiry,
    StoredChain,
    StoredJob,
    TriggerResult,
    WorkerActivity,
    activity_buckets,
    inserted_job,
    inserted_jobs,
    queue_stats_in_order,
)
from queuert.state_publishing import Announce

from queuert_postgres import _partitions as parts
from queuert_postgres._notifying import PgPublisher
from queuert_postgres._partitions import LAYOUT_MIGRATION, Bounds, Partitioning
from queuert_postgres._provider import (
    PgProvider,
    Row,
    Sql,
    in_failed_transaction,
    savepoint_name,
)
from queuert_postgres._rows import (
    chain_from_row,
    closed_job,
    complete_result,
    job_from_claim_row,
    job_from_row,
    utc,
)
from queuert_postgres._schema import BOOTSTRAP, MIGRATION_LOCK_KEY, MIGRATIONS, Names
from queuert_postgres._sql import (
    ID_SEPARATOR,
    ID_TAKEN,
    INPUT_SEPARATOR,
    JOB_ID,
    MESSAGE_SEPARATOR,
    STATUS_PREDICATES,
    AddBlockersRow,
    ClaimRow,
    CompleteRow,
    CreateRow,
    DeleteRow,
    ReapRow,
    RenewRow,
    Statements,
    TriggerRow,
    cols,
    status_sql,
    tail_of,
)

__all__ = ["PgStateAdapter"]


def _created_order(job: StoredJob) -> tuple[datetime, str]:
    return (job.created_at, job.id)


TxT = TypeVar("TxT")
T = TypeVar("T")

logger = logging.getLogger("queuert.postgres")

_new_tuple = tuple.__new__

_ABORTED = (
    "a statement failed in this transaction: roll back to the enclosing savepoint (or end the "
    "transaction) before running more statements"
)


def _lock_not_available(exc: BaseException) -> bool:
    """True for PostgreSQL's ``lock_not_available`` (55P03), whatever the driver."""
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if code == "55P03":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _id_taken(exc: BaseException) -> bool:
    """True for the error of a statement that inserts all its rows or fails: its check failed (see
    ``ID_TAKEN``) or an id was taken (a unique violation, see ``SKIP_TAKEN``)."""
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if code == "23505" or (code == "22P02" and ID_TAKEN in str(seen)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


_MAX_CLASH_RETRIES = 5
"""How many times a start without a transaction is tried when its statement found an id taken
that no stored job holds by the time it is read (the holder was deleted in between)."""

_MAX_FOLLOW = 1000
"""Upper bound on re-reads while following a chain that keeps continuing under a locked read."""


def _announces(notifications: Notifications) -> bool:
    """Whether ``notifications`` hold any message."""
    return bool(
        notifications.ready
        or notifications.scheduled
        or notifications.closed_chains
        or notifications.ownership_lost
    )


def _secs(delta: timedelta) -> float:
    return delta.total_seconds()


def _limit(limit: int) -> str:
    """A page's row count as a literal of the statement, not a parameter. The adapter's connections
    use generic plans (see :class:`~queuert_postgres.AsyncpgProvider`), and a generic plan cannot
    see a parameter's value: with ``LIMIT $n`` PostgreSQL assumes a tenth of the table is wanted
    and chose a parallel scan and sort of every job (240 ms with a million jobs) over walking the
    listing index for 51 rows (under 1 ms). ``limit`` is an int the core checked (1 to 1000)."""
    return str(int(fetch_size(limit)))


class _Params:
    """Collects positional parameters for dynamically built statements."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


class PgStateAdapter(Generic[TxT]):
    """Jobs, chains and blocker links in PostgreSQL tables (``{schema}.{table_prefix}job`` and
    ``{schema}.{table_prefix}job_blocker``).

    ``provider`` runs the SQL on the driver you use (see :mod:`queuert_postgres._provider`); the
    transaction object ``tx`` of every operation is that driver's transaction object. Use
    :meth:`connect` for the default asyncpg pool. Call :meth:`migrate` once per deployment (it is
    idempotent and safe to run from several processes at once).

    Transactions must run at ``READ COMMITTED`` (PostgreSQL's default): the adapter relies on each
    statement seeing what committed before it started.

    :meth:`close` closes the provider too unless ``owns_provider=False`` (a provider shared with
    another adapter or owned by the application).
    """

    ids = UUID_IDS

    def __init__(
        self,
        provider: PgProvider[TxT],
        *,
        schema: str = "public",
        table_prefix: str = "queuert_",
        owns_provider: bool = True,
        partitioning: Partitioning | None = None,
    ) -> None:
        self.names = Names(schema, table_prefix)
        if partitioning is not None and not isinstance(partitioning, Partitioning):
            raise ConfigurationError(
                f"partitioning must be a queuert_postgres.Partitioning or None, not {partitioning!r}"
            )
        self.partitioning = partitioning
        self.provider = provider
        self._owns_provider = owns_provider
        self.sql = Statements(self.names, partitioned=partitioning is not None)
        self.capabilities = Capabilities(
            savepoints=True,
            row_locks=True,
            concurrent_transactions=True,
            multi_process=True,
            poison_transaction=True,
            concurrency_limits=True,
        )
        self._closed = False
        self._dynamic: dict[str, Sql] = {}

    @classmethod
    def connect(
        cls,
        dsn: str,
        *,
        schema: str = "public",
        table_prefix: str = "queuert_",
        min_size: int = 1,
        max_size: int = 10,
        prepared_statements: bool = True,
        connect_timeout: Duration = 10.0,
        statement_timeout: Duration | None = 60.0,
        partitioning: Partitioning | None = None,
        **pool_options: Any,
    ) -> Opening[PgStateAdapter[Any]]:
        """An adapter over a new asyncpg pool (closed by :meth:`close`):
        ``async with PgStateAdapter.connect(dsn) as adapter:`` closes it when the block ends,
        ``adapter = await PgStateAdapter.connect(dsn)`` leaves closing to you. ``connect_timeout``
        and ``statement_timeout`` bound connecting and each statement (see
        :class:`~queuert_postgres.AsyncpgProvider`); ``partitioning`` selects the partitioned
        layout (see :class:`~queuert_postgres.Partitioning`)."""
        from queuert_postgres._provider import AsyncpgProvider

        names = Names(schema, table_prefix)  # validate before connecting

        async def open() -> PgStateAdapter[Any]:
            provider = await AsyncpgProvider.connect(
                dsn,
                min_size=min_size,
                max_size=max_size,
                prepared_statements=prepared_statements,
                connect_timeout=connect_timeout,
                statement_timeout=statement_timeout,
                **pool_options,
            )
            return PgStateAdapter(
                provider,
                schema=names.schema,
                table_prefix=names.prefix,
                partitioning=partitioning,
            )

        return Opening(open)

    # -- plumbing ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StateAdapterClosedError()

    async def _fetch(self, sql: Sql, args: Sequence[Any], tx: TxT | None) -> list[Row]:
        self._check_open()
        try:
            return await self.provider.fetch(sql, args, tx)
        except Exception as exc:
            if tx is not None and in_failed_transaction(exc):
                raise TransactionAbortedError(_ABORTED) from exc
            raise

    def _sql(self, template: str) -> Sql:
        """A dynamically built statement (cached by text so drivers can reuse prepared statements)."""
        found = self._dynamic.get(template)
        if found is None:
            if len(self._dynamic) > 512:
                self._dynamic.clear()
            found = self._dynamic[template] = self.sql.render(template)
        return found

    @asynccontextmanager
    async def _maybe_transaction(self, tx: TxT | None) -> AsyncIterator[TxT]:
        if tx is not None:
            yield tx
            return
        async with self.transaction() as own:
            yield own

    # -- lifecycle and transactions ---------------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[TxT]:
        self._check_open()
        return self.provider.transaction()

    def attach_commit_hooks(
        self, tx: Any, on_commit: Callable[[], None], on_rollback: Callable[[], None]
    ) -> bool:
        """See :class:`queuert.state.SupportsCommitHooks`: supported for SQLAlchemy sessions, so
        ``client.start_chain(job, tx=session)`` needs no ``client.hooks(...)`` around it."""
        attach = getattr(self.provider, "attach_commit_hooks", None)
        return bool(attach(tx, on_commit, on_rollback)) if attach is not None else False

    def savepoint(self, tx: TxT) -> AbstractAsyncContextManager[TxT]:
        return self._savepoint(tx)

    @asynccontextmanager
    async def _savepoint(self, tx: TxT) -> AsyncIterator[TxT]:
        self._check_open()
        name = savepoint_name()
        try:
            await self.provider.script(f"SAVEPOINT {name}", tx)
        except Exception as exc:
            if in_failed_transaction(exc):
                raise TransactionAbortedError(_ABORTED) from exc
            raise
        try:
            yield tx
        except BaseException:
            await self.provider.script(
                f"ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}", tx
            )
            raise
        await self.provider.script(f"RELEASE SAVEPOINT {name}", tx)

    async def poison(self, tx: TxT) -> None:
        """Make a statement fail inside ``tx`` (PostgreSQL then aborts the transaction until it
        rolls back to a savepoint). For error-path tests; the error is swallowed."""
        with suppress(Exception):
            await self.provider.script("SELECT 1/0", tx)

    async def migrate(self) -> MigrationResult:
        """Create or upgrade the schema; see :mod:`queuert_postgres._schema` for the migrations.

        Each migration runs in its own transaction under a transaction-scoped advisory lock, so
        processes migrating at once apply every migration exactly once.

        With ``partitioning``, a new (empty) job table is then partitioned (migration
        ``layout_partitioned``) and the partitions of the current bucket and the ``ahead`` after it
        are created. An unpartitioned table that holds jobs is not converted here (that copies
        every job under an exclusive lock): :meth:`migrate_to_partitioned` does it.
        """
        self._check_open()
        names = self.names
        applied: list[str] = []
        skipped: list[str] | None = None
        unrecognized: list[str] = []
        known = [m.name for m in MIGRATIONS] + [LAYOUT_MIGRATION]
        lock = Sql("SELECT pg_advisory_xact_lock($1::int8) IS NULL")
        select = self.sql.render("SELECT name FROM {migration} ORDER BY name")
        record = self.sql.render("INSERT INTO {migration} (name) VALUES ($1::text)")
        while True:
            async with self.provider.transaction() as tx:
                await self.provider.fetch(lock, [MIGRATION_LOCK_KEY], tx)
                if names.schema != "public":
                    await self.provider.script(f"CREATE SCHEMA IF NOT EXISTS {names.schema_q}", tx)
                await self.provider.script(names.render(BOOTSTRAP), tx)
                done = [row[0] for row in await self.provider.fetch(select, [], tx)]
                if skipped is None:
                    skipped = [name for name in known if name in done]
                    unrecognized = [name for name in done if name not in known]
                pending = [m for m in MIGRATIONS if m.name not in done]
                if not pending:
                    partitioned = LAYOUT_MIGRATION in done
                    if partitioned and self.partitioning is None:
                        raise ConfigurationError(
                            f"the job table in schema {names.schema!r} with prefix "
                            f"{names.prefix!r} is partitioned: open the adapter with "
                            "partitioning=Partitioning(...)"
                        )
                    if self.partitioning is not None and not partitioned:
                        empty = self.sql.render("SELECT NOT EXISTS (SELECT 1 FROM {job})")
                        if not (await self.provider.fetch(empty, [], tx))[0][0]:
                            raise ConfigurationError(
                                "the job table holds jobs and is not partitioned: move it with "
                                "PgStateAdapter.migrate_to_partitioned() (in a maintenance "
                                "window), or open the adapter without partitioning"
                            )
                        await self._partition_table(tx)
                        await self.provider.fetch(record, [LAYOUT_MIGRATION], tx)
                        applied.append(LAYOUT_MIGRATION)
                    break
                migration = pending[0]
                logger.info(
                    "applying migration",
                    extra={"queuert_migration": migration.name, "queuert_schema": names.schema},
                )
                await self.provider.script(names.render(migration.sql), tx)
                await self.provider.fetch(record, [migration.name], tx)
            applied.append(migration.name)
        if self.partitioning is not None:
            await self.maintain_storage()
        return MigrationResult(applied=applied, skipped=skipped or [], unrecognized=unrecognized)

    async def migrate_to_partitioned(self) -> MigrationResult:
        """Move an installation to the partitioned layout (the adapter must have ``partitioning``).

        Applies the pending migrations, then, in one transaction, renames the job table, creates the
        partitioned one, copies every job into it (chains created before the current bucket go to
        the ``history`` partition, which retention drops once all of it has expired), drops the old
        table and builds the indexes. The old table stays locked for the whole copy: stop the
        workers and producers first (a maintenance window; about a minute per few million jobs).
        Idempotent: on a partitioned table it only applies pending migrations.
        """
        self._check_open()
        if self.partitioning is None:
            raise ConfigurationError("migrate_to_partitioned() needs an adapter with partitioning")
        names = self.names
        lock = Sql("SELECT pg_advisory_xact_lock($1::int8) IS NULL")
        select = self.sql.render("SELECT name FROM {migration} ORDER BY name")
        record = self.sql.render("INSERT INTO {migration} (name) VALUES ($1::text)")
        async with self.provider.transaction() as tx:
            await self.provider.fetch(lock, [MIGRATION_LOCK_KEY], tx)
            if names.schema != "public":
                await self.provider.script(f"CREATE SCHEMA IF NOT EXISTS {names.schema_q}", tx)
            await self.provider.script(names.render(BOOTSTRAP), tx)
            done = [row[0] for row in await self.provider.fetch(select, [], tx)]
        if LAYOUT_MIGRATION in done:
            return await self.migrate()
        plain = PgStateAdapter(
            self.provider, schema=names.schema, table_prefix=names.prefix, owns_provider=False
        )
        result = await plain.migrate()
        async with self.provider.transaction() as tx:
            await self.provider.fetch(lock, [MIGRATION_LOCK_KEY], tx)
            done = [row[0] for row in await self.provider.fetch(select, [], tx)]
            if LAYOUT_MIGRATION not in done:
                logger.info(
                    "moving the job table to the partitioned layout",
                    extra={"queuert_schema": names.schema, "queuert_table_prefix": names.prefix},
                )
                await self.provider.script("SET LOCAL statement_timeout = 0", tx)
                await self._partition_table(tx)
                await self.provider.fetch(record, [LAYOUT_MIGRATION], tx)
                result.applied.append(LAYOUT_MIGRATION)
            else:
                result.skipped.append(LAYOUT_MIGRATION)
        await self.maintain_storage()
        return result

    async def _partition_table(self, tx: TxT) -> None:
        """Replace the unpartitioned job table with the partitioned one (see :meth:`migrate`)."""
        assert self.partitioning is not None
        names = self.names
        provider = self.provider
        old = f"{names.prefix}job_unpartitioned"
        job_table = f"{names.prefix}job"
        indexes = await provider.fetch(
            Sql(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "WHERE i.schemaname = $1::text AND i.tablename = $2::text "
                "AND i.indexname <> $3::text ORDER BY i.indexname"
            ),
            [names.schema, job_table, f"{job_table}_pkey"],
            tx,
        )
        foreign_keys = await provider.fetch(
            Sql(
                "SELECT c.conname FROM pg_constraint c "
                "WHERE c.conrelid = $1::text::regclass AND c.contype = 'f' ORDER BY c.conname"
            ),
            [names.blocker],
            tx,
        )
        now_ms = await self._now_ms(tx)
        buckets = parts.wanted_buckets(self.partitioning, now_ms)
        statements = [
            f'ALTER TABLE {names.blocker} DROP CONSTRAINT "{row[0]}"' for row in foreign_keys
        ]
        statements += [
            f'ALTER TABLE {names.job} RENAME TO "{old}"',
            f"CREATE TABLE {names.job} (LIKE {parts.q(names, old)} INCLUDING DEFAULTS "
            "INCLUDING CONSTRAINTS) PARTITION BY RANGE (chain_id)",
            parts.create_partition_sql(names, parts.history_name(names), None, buckets[0][1]),
        ]
        statements += [
            parts.create_partition_sql(names, parts.bucket_name(names, start), low, high)
            for start, low, high in buckets
        ]
        statements += [
            f"CREATE TABLE {parts.q(names, parts.default_name(names))} PARTITION OF {names.job} "
            f"DEFAULT WITH ({parts.PARTITION_STORAGE})",
            f"INSERT INTO {names.job} SELECT * FROM {parts.q(names, old)}",
            f"DROP TABLE {parts.q(names, old)}",
            f'ALTER TABLE {names.job} ADD CONSTRAINT "{job_table}_pkey" PRIMARY KEY (id, chain_id)',
        ]
        statements += [str(row[1]) for row in indexes]
        statements.append(f"ANALYZE {names.job}")
        for statement in statements:
            await provider.script(statement, tx)

    async def _now_ms(self, tx: TxT | None) -> int:
        rows = await self._fetch(
            Sql("SELECT (extract(epoch FROM statement_timestamp()) * 1000)::int8"), [], tx
        )
        return int(rows[0][0])

    async def partitions(self, *, tx: TxT | None = None) -> list[Bounds]:
        """The partitions of the job table, oldest range first (the default one last); empty for
        an unpartitioned table."""
        rows = await self._fetch(
            Sql(
                "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = $1::text::regclass"
            ),
            [self.names.job],
            tx,
        )
        found = [parts.parse_bound(str(row[0]), str(row[1])) for row in rows]
        return sorted(found, key=lambda b: (b.is_default, b.low or "", b.high or ""))

    @property
    def storage_maintenance_every(self) -> timedelta | None:
        """How often the workers run :meth:`maintain_storage` without retention (see
        :attr:`Partitioning.maintenance_every`); None for the unpartitioned layout."""
        return None if self.partitioning is None else self.partitioning.maintenance_every

    async def maintain_storage(self, closed_before: datetime | None = None) -> StorageExpiry:
        """The partitioned layout's maintenance (a no-op without ``partitioning``): create the
        partitions of the current bucket and the ``ahead`` after it, and, with ``closed_before``,
        drop each partition whose range ends before it and whose chains are all closed before it
        and waited on by no chain outside the partition. Retention runs call it (under the
        maintenance lease); it is safe to call from several processes at once.

        A partition with an open chain, a chain closed later, or a chain that another one waits on
        is kept (``kept``); retention deletes its expired chains one by one instead. Detaching takes
        a brief exclusive lock on the job table (a change of the catalog only); if it is not granted
        within ``Partitioning.lock_timeout`` the partition waits for the next run. The detached
        table (renamed ``{p}job_pdrop_...``) is then counted and dropped with no lock on the job
        table; a table that a stopped run left detached is counted and dropped by the next one.
        """
        self._check_open()
        if self.partitioning is None:
            return StorageExpiry()
        created = await self._create_ahead()
        chains = jobs = dropped = kept = 0
        estimated = False
        for name in await self._detached():
            # detached by a run that stopped before it dropped them: finish that run's work
            finished = await self._drop_detached(name)
            if finished is not None:
                chains += finished[0]
                jobs += finished[1]
                estimated = estimated or finished[2]
                dropped += 1
        if closed_before is not None:
            limit = parts.uuid_at(parts.ms_of(closed_before))
            for bounds in await self.partitions():
                if bounds.is_default or bounds.high is None or bounds.high > limit:
                    continue
                outcome = await self._drop_partition(bounds, closed_before)
                if outcome is None:
                    kept += 1
                else:
                    chains += outcome[0]
                    jobs += outcome[1]
                    estimated = estimated or outcome[2]
                    dropped += 1
        return StorageExpiry(
            chains=chains,
            jobs=jobs,
            partitions_dropped=dropped,
            partitions_created=created,
            partitions_kept=kept,
            estimated=estimated,
        )

    async def _create_ahead(self) -> int:
        assert self.partitioning is not None
        names = self.names
        created = 0
        now_ms = await self._now_ms(None)
        existing = await self.partitions()
        default = next((b for b in existing if b.is_default), None)
        for start, low, high in parts.wanted_buckets(self.partitioning, now_ms):
            if parts.overlaps(existing, low, high):
                continue
            name = parts.bucket_name(names, start)
            try:
                async with self.provider.transaction() as tx:
                    # the maintainers' lock first: lock_timeout bounds the wait for the job
                    # table's locks, not for another installation's migration in this database
                    await self.provider.fetch(
                        Sql("SELECT pg_advisory_xact_lock($1::int8) IS NULL"),
                        [MIGRATION_LOCK_KEY],
                        tx,
                    )
                    await self.provider.script(
                        f"SET LOCAL lock_timeout = {self.partitioning.lock_timeout_ms}", tx
                    )
                    if parts.overlaps(await self.partitions(tx=tx), low, high):
                        continue
                    moving = f"{names.prefix}job_moving"
                    if default is not None:
                        # rows of the new range in the default partition move into it
                        source = parts.q(names, default.name)
                        where = f"chain_id >= '{low}'::uuid AND chain_id < '{high}'::uuid"
                        await self.provider.script(
                            f'CREATE TEMPORARY TABLE "{moving}" ON COMMIT DROP AS '
                            f"SELECT * FROM {source} WHERE {where}; "
                            f"DELETE FROM {source} WHERE {where}",
                            tx,
                        )
                    await self.provider.script(
                        parts.create_partition_sql(names, name, low, high), tx
                    )
                    if default is not None:
                        await self.provider.script(
                            f'INSERT INTO {names.job} SELECT * FROM "{moving}"', tx
                        )
                created += 1
                logger.info(
                    "created partition",
                    extra={"queuert_partition": name, "queuert_schema": names.schema},
                )
            except Exception as exc:
                if not _lock_not_available(exc):
                    raise
                logger.warning(
                    "creating a partition timed out waiting for its lock; retrying next run",
                    extra={"queuert_partition": name, "queuert_schema": names.schema},
                )
        return created

    async def _drop_partition(
        self, bounds: Bounds, closed_before: datetime
    ) -> tuple[int, int, bool] | None:
        """Detach and drop one expired partition; (chains, jobs, estimated) it held, or None if it
        must stay.

        Two steps, each one transaction: under the job table's lock (``lock_timeout``) the partition
        is checked again and detached, a change of the catalog only; then, with nothing waiting on
        it, the detached table is counted and dropped (:meth:`_drop_detached`). A run that stops
        between the two leaves a detached table that the next run counts and drops."""
        assert self.partitioning is not None
        names = self.names
        table = parts.q(names, bounds.name)
        ready = "outcome IS NULL AND open_blockers = 0 AND leased_until IS NULL"
        leased = "outcome IS NULL AND leased_until IS NOT NULL"
        blocked = "outcome IS NULL AND open_blockers > 0 AND leased_until IS NULL"
        # the cutoff ($1) must be planned with its value (a custom plan, set below): under a
        # generic plan PostgreSQL cannot see it, guesses that a third of the partition closed after
        # it and reads the whole partition (100 ms per million jobs, twice, the second time under
        # the table's lock) instead of probing the index of closing times
        custom = "SET LOCAL plan_cache_mode = force_custom_plan"
        check = Sql(
            f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {ready}) "
            f"OR EXISTS (SELECT 1 FROM {table} WHERE {leased}) "
            f"OR EXISTS (SELECT 1 FROM {table} WHERE {blocked}) "
            f"OR EXISTS (SELECT 1 FROM {table} WHERE completed_at >= $1::timestamptz) "
            f"OR EXISTS (SELECT 1 FROM {names.blocker} b "
            f"WHERE {bounds.where('b.blocked_by_chain_id')} "
            f"AND NOT EXISTS (SELECT 1 FROM {table} j WHERE j.id = b.job_id))"
        )
        async with self.provider.transaction() as tx:
            await self.provider.script(
                "SET LOCAL statement_timeout = 0; SET LOCAL max_parallel_workers_per_gather = 0; "
                + custom,
                tx,
            )
            if (await self.provider.fetch(check, [closed_before], tx))[0][0]:
                return None
            # links from the partition's jobs (closed, so no longer consulted)
            await self.provider.script(
                f"DELETE FROM {names.blocker} b WHERE b.job_id IN (SELECT j.id FROM {table} j)",
                tx,
            )
        # the detach makes every connection plan its statements again, with the statistics the
        # partitions have at that moment: first bring those of the hot partitions up to date
        await self._analyze_hot()
        try:
            async with self.provider.transaction() as tx:
                # one maintainer at a time (the lease of the retention run already ensures it; a
                # direct call from elsewhere waits here). Taken before lock_timeout is set: that
                # bounds the wait for the job table, not for a migration (of any installation in
                # the database: they share this lock) running meanwhile
                await self.provider.fetch(
                    Sql("SELECT pg_advisory_xact_lock($1::int8) IS NULL"), [MIGRATION_LOCK_KEY], tx
                )
                await self.provider.script(
                    f"SET LOCAL lock_timeout = {self.partitioning.lock_timeout_ms}; {custom}", tx
                )
                await self.provider.script(f"LOCK TABLE {names.job} IN ACCESS EXCLUSIVE MODE", tx)
                if bounds not in await self.partitions(tx=tx):
                    return None  # detached by another run meanwhile, which drops it
                # nothing can have changed what the check saw except a chain created since with an
                # id in this old range (a client clock far behind): check again under the lock
                if (await self.provider.fetch(check, [closed_before], tx))[0][0]:
                    return None
                dropping = parts.dropping_name(names, bounds.name)
                await self.provider.script(
                    f"ALTER TABLE {names.job} DETACH PARTITION {table}; "
                    f'ALTER TABLE {table} RENAME TO "{dropping}"',
                    tx,
                )
        except Exception as exc:
            if not _lock_not_available(exc):
                raise
            logger.warning(
                "detaching a partition timed out waiting for its lock; retrying next run",
                extra={"queuert_partition": bounds.name, "queuert_schema": names.schema},
            )
            return None
        return await self._drop_detached(dropping)

    async def _analyze_hot(self) -> None:
        """ANALYZE the partitions of the current and the previous bucket (where the open chains
        are). Statistics taken while such a partition was still empty make a plan built after a
        detach read it row by row for every job of a batch: measured, one group completion then
        took 20 s instead of milliseconds."""
        assert self.partitioning is not None
        step = self.partitioning.interval_ms
        current = parts.bucket_start(await self._now_ms(None), step)
        attached = {b.name for b in await self.partitions()}
        for start in (current - step, current):
            name = parts.bucket_name(self.names, start)
            if name not in attached:
                continue
            try:
                async with self.provider.transaction() as tx:
                    await self.provider.script(
                        f"SET LOCAL lock_timeout = {self.partitioning.lock_timeout_ms}; "
                        f"ANALYZE {parts.q(self.names, name)}",
                        tx,
                    )
            except Exception as exc:
                if not _lock_not_available(exc):
                    raise
                # the detach that follows waits for the same lock and gives up the same way
                logger.warning(
                    "analysing a partition timed out waiting for its lock",
                    extra={"queuert_partition": name, "queuert_schema": self.names.schema},
                )

    async def _detached(self, tx: TxT | None = None) -> list[str]:
        """Tables of expired partitions detached (and renamed ``{p}job_pdrop_...``) by a run
        that stopped before dropping them; a partition detached by hand keeps its name and is left
        alone."""
        rows = await self._fetch(
            Sql(
                "SELECT c.relname::text FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = $1::text AND c.relkind = 'r' AND NOT c.relispartition "
                "AND c.relname::text ~ $2::text ORDER BY c.relname"
            ),
            [self.names.schema, parts.dropping_pattern(self.names)],
            tx,
        )
        return [str(row[0]) for row in rows]

    async def _drop_detached(self, name: str) -> tuple[int, int, bool] | None:
        """Count and drop a detached partition's table (one transaction: a run that stops here
        leaves it to the next); (chains, jobs, estimated) it held, or None if another run dropped
        it."""
        assert self.partitioning is not None
        names = self.names
        table = parts.q(names, name)
        async with self.provider.transaction() as tx:
            await self.provider.script(
                "SET LOCAL statement_timeout = 0; SET LOCAL max_parallel_workers_per_gather = 0", tx
            )
            await self.provider.fetch(
                Sql("SELECT pg_advisory_xact_lock($1::int8) IS NULL"), [MIGRATION_LOCK_KEY], tx
            )
            if name not in await self._detached(tx):
                return None
            counted = None
            if self.partitioning.counts == "estimated":
                # the table's rows as the last VACUUM or ANALYZE counted or estimated them (-1:
                # never analysed), and the share of first jobs (the chains) in its statistics
                counted = await self.provider.fetch(
                    Sql(
                        "SELECT c.reltuples * m.f, c.reltuples FROM pg_class c "
                        "JOIN pg_stats s ON s.schemaname = $1::text AND s.tablename = $2::text "
                        "AND s.attname = 'chain_index' AND NOT s.inherited "
                        "CROSS JOIN LATERAL unnest(s.most_common_vals::text::int[], "
                        "s.most_common_freqs) AS m(v, f) "
                        "WHERE c.oid = $3::text::regclass AND c.reltuples >= 0 AND m.v = 0"
                    ),
                    [names.schema, name, table],
                    tx,
                )
            estimated = bool(counted)
            if not counted:
                # exact, and no longer in the way of the hot paths: nothing else reads this table
                counted = await self.provider.fetch(
                    Sql(f"SELECT count(*) FILTER (WHERE chain_index = 0), count(*) FROM {table}"),
                    [],
                    tx,
                )
            await self.provider.script(f"DROP TABLE {table}", tx)
        chains, jobs = round(float(counted[0][0])), round(float(counted[0][1]))
        logger.info(
            "dropped partition",
            extra={
                "queuert_partition": name,
                "queuert_schema": names.schema,
                "queuert_chains": chains,
                "queuert_jobs": jobs,
                "queuert_estimated": estimated,
            },
        )
        return chains, jobs, estimated

    async def close(self) -> None:
        """Close the adapter, and its provider if it owns it (``owns_provider``). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_provider:
            await self.provider.close()

    async def __aenter__(self) -> PgStateAdapter[TxT]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- creating ---------------------------------------------------------------------------------

    def _dedup_lock_key(self, chain_type_name: str, key: str) -> int:
        raw = "\x1f".join((self.names.schema, self.names.prefix, chain_type_name, key))
        digest = hashlib.blake2b(raw.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    async def create_jobs(
        self, jobs: Sequence[NewJob], *, tx: TxT | None = None
    ) -> list[CreatedJob]:
        return await self._create_jobs(jobs, tx, None)

    async def create_jobs_publishing(
        self, jobs: Sequence[NewJob], notifications: Notifications, publish: NotifyInTransaction
    ) -> list[CreatedJob]:
        """:meth:`create_jobs` in a transaction of its own that also publishes ``notifications``
        (see :class:`~queuert.state_publishing.SupportsCreatePublishing`). With the publisher of a
        :class:`~queuert_postgres.PgNotifyAdapter` on this database and chain starts without
        deduplication, one autocommit statement inserts the rows and sends the messages, only when
        every row was inserted."""
        self._check_open()
        if not jobs:
            return []
        if isinstance(publish, PgPublisher) and publish.state is self:
            if len(jobs) == 1:
                # one start (a loop of start_chain calls): straight to its statement, awaited
                # here rather than through _create_one and _insert_alone (a coroutine each)
                new = jobs[0]
                if new.chain_id is None and new.deduplication is None:
                    channels, payloads = publish.messages(notifications)
                    if len(channels) <= 1:
                        args = self._one_args(new)
                        if channels:
                            sql = self.sql.create_one_notify
                            args += (channels[0], payloads[0])
                        else:
                            sql = self.sql.create_one_alone
                        try:
                            rows = await self.provider.fetch(sql, args, None)
                        except Exception as exc:
                            rows = await self._insert_again(exc, sql, args, jobs)
                        return [self._one_created(new, rows)]
            for new in jobs:  # a loop, not all(): no generator step per job
                if new.chain_id is not None or new.deduplication is not None:
                    break
            else:
                messages = publish.messages(notifications)
                return await self._create_first(
                    jobs, self._first_args(jobs), None, messages if messages[0] else None
                )
        async with self.transaction() as tx:
            created = await self._create_jobs(jobs, tx, None)
            if not any(c.deduplicated for c in created):
                await publish(tx, notifications)
            return created

    async def _create_jobs(
        self,
        jobs: Sequence[NewJob],
        tx: TxT | None,
        messages: tuple[list[str], list[str]] | None,
    ) -> list[CreatedJob]:
        """``messages`` (channels, payloads; only for chain starts without deduplication, ``tx``
        ``None``): sent by the INSERT statement itself."""
        self._check_open()
        if not jobs:
            return []
        if all(new.chain_id is None and new.deduplication is None for new in jobs):
            if len(jobs) == 1 and (messages is None or len(messages[0]) == 1):
                return [await self._create_one(jobs[0], tx, messages)]
            return await self._create_first(jobs, self._first_args(jobs), tx, messages)
        assert messages is None, "messages only go with chain starts without deduplication"
        per_job: list[tuple[Any, ...]] = []
        excl_ord: list[int] = []
        excl_id: list[str] = []
        lock_keys: set[int] = set()
        for ordinal, new in enumerate(jobs, start=1):
            dedup = new.deduplication if new.chain_id is None else None
            schedule = new.schedule
            at = schedule.at if schedule is not None else None
            after = (
                _secs(schedule.after)
                if schedule is not None and schedule.after is not None
                else None
            )
            per_job.append(
                (
                    new.id,
                    new.type_name,
                    new.chain_type_name,
                    new.chain_id,
                    new.chain_index,
                    new.input_json(),  # the text the client checked, not encoded again
                    at,
                    after,
                    dedup.key if dedup is not None else None,
                    dedup.scope == "any" if dedup is not None else None,
                    _secs(dedup.window) if dedup is not None and dedup.window is not None else None,
                    new.chain_trace_context,
                    new.trace_context,
                    new.priority or None,  # NULL reads as 0: a batch without priorities sends []
                    new.limit_key,
                )
            )
            if dedup is not None:
                lock_keys.add(self._dedup_lock_key(new.chain_type_name, dedup.key))
                for excluded in dedup.exclude_chain_ids:
                    excl_ord.append(ordinal)
                    excl_id.append(excluded)
        # one argument array per column: the rows transposed in C rather than 13 appends per job
        columns = [list(column) for column in zip(*per_job, strict=True)]
        priorities, keys = (
            column if column.count(None) != len(column) else [] for column in columns[13:15]
        )
        args = [*columns[:13], excl_ord, excl_id, priorities, keys]
        if not lock_keys:
            if tx is None:
                rows = await self._insert_alone(self.sql.create_alone, args, jobs, repeats=False)
            else:
                rows = await self._fetch(self.sql.create, args, tx)
            return await self._created(jobs, rows, tx)
        async with self._maybe_transaction(tx) as own:
            # Serialise creators of the same (chain type, key) before the check. A separate statement:
            # under READ COMMITTED the check must take its snapshot after the lock is granted.
            await self._fetch(self.sql.dedup_locks, [sorted(lock_keys)], own)
            rows = await self._fetch(self.sql.create, args, own)
            return await self._created(jobs, rows, own)

    @staticmethod
    def _first_args(jobs: Sequence[NewJob]) -> list[Any]:
        """The arguments of :data:`~queuert_postgres._sql.CREATE_FIRST` for ``jobs``."""
        # chain starts without deduplication, the common case: the short statement's columns
        # built one by one (a column with no value in any row goes as an empty array: unnest
        # pads it with NULLs, and the driver skips inspecting a hundred Nones)
        schedules = [new.schedule for new in jobs]
        if schedules.count(None) == len(schedules):
            at_column: list[Any] = []
            after_column: list[Any] = []
        else:
            at_column = [None if s is None else s.at for s in schedules]
            after_column = [
                None if s is None or s.after is None else _secs(s.after) for s in schedules
            ]
        type_names = [new.type_name for new in jobs]
        chain_type_names = [new.chain_type_name for new in jobs]
        # the ids and the inputs as one text each, split by the statement
        ids = ID_SEPARATOR.join([new.id for new in jobs])
        # the texts the client checked (each encoded now only where a job came without it)
        texts: list[Any] = [new.input_text for new in jobs]
        if None in texts:
            texts = [new.input_json() for new in jobs]
        inputs = INPUT_SEPARATOR.join(texts)
        if ids.count(ID_SEPARATOR) != len(jobs) - 1:
            raise ValueError("a job id holds a comma: not an id of the adapter's id policy")
        if inputs.count(INPUT_SEPARATOR) != len(jobs) - 1:
            raise ValueError("an input_text holds a control character: not compact JSON text")
        return [
            ids,
            # one job type: its name once (the statement gives it to every row)
            type_names[:1] if type_names.count(type_names[0]) == len(type_names) else type_names,
            # a chain's type is its first job's: sent only if one differs
            [] if chain_type_names == type_names else chain_type_names,
            inputs,
            at_column,
            after_column,
            *(
                column if column.count(None) != len(column) else []
                for column in (
                    [new.chain_trace_context for new in jobs],
                    [new.trace_context for new in jobs],
                    [new.priority or None for new in jobs],  # NULL reads as 0
                    [new.limit_key for new in jobs],
                )
            ),
        ]

    async def _create_one(
        self, new: NewJob, tx: TxT | None, messages: tuple[list[str], list[str]] | None
    ) -> CreatedJob:
        """One chain start without deduplication: :data:`~queuert_postgres._sql.CREATE_ONE`, the
        arguments of :meth:`_create_first`'s arrays as scalars, and its one wake-up if ``messages``
        holds it. In ``tx`` nothing is inserted when the id is taken (nothing to undo); without
        it the statement fails instead, as a batch does."""
        args = self._one_args(new)
        if tx is not None:
            assert messages is None, "messages only go without a caller's transaction"
            rows = await self._fetch(self.sql.create_one, args, tx)
        elif messages is None:
            rows = await self._insert_alone(self.sql.create_one_alone, args, (new,))
        else:
            (channel,), (payload,) = messages
            rows = await self._insert_alone(
                self.sql.create_one_notify, (*args, channel, payload), (new,)
            )
        return self._one_created(new, rows)

    @staticmethod
    def _one_args(new: NewJob) -> tuple[Any, ...]:
        """The arguments of :data:`~queuert_postgres._sql.CREATE_ONE` for ``new``."""
        schedule = new.schedule
        if schedule is None:
            at = after = None
        else:
            at = schedule.at
            after = None if schedule.after is None else _secs(schedule.after)
        return (
            new.id,
            new.type_name,
            new.chain_type_name,
            new.input_json(),  # the text the client checked
            at,
            after,
            new.chain_trace_context,
            new.trace_context,
            new.priority,
            new.limit_key,
        )

    @staticmethod
    def _one_created(new: NewJob, rows: list[Row]) -> CreatedJob:
        """The job :data:`~queuert_postgres._sql.CREATE_ONE` inserted for ``new``, from what was
        sent and the ``rows`` it returned (none: the id was taken)."""
        if not rows:
            raise DuplicateJobIdError(new.id)
        statement_at, scheduled_at = rows[0][0], rows[0][1]
        now = utc(statement_at)
        later = scheduled_at > statement_at
        job = inserted_job(
            new,
            input=new.input,
            created_at=now,
            scheduled_at=utc(scheduled_at) if later else now,
            status="scheduled" if later else "ready",
        )
        return _new_tuple(CreatedJob, (job, False))  # without the named tuple's __new__

    async def _create_first(
        self,
        jobs: Sequence[NewJob],
        args: list[Any],
        tx: TxT | None,
        messages: tuple[list[str], list[str]] | None = None,
    ) -> list[CreatedJob]:
        """Chain starts without deduplication: one INSERT returning one row, and the jobs assembled
        from what we sent plus the server's timestamps (no row per job to decode, no JSON parsing of
        the input again)."""
        if messages is None:
            if tx is None:
                rows = await self._insert_alone(self.sql.create_first_alone, args, jobs)
            else:
                rows = await self._fetch(self.sql.create_first, args, tx)
            ((statement_at, count, inserted, later_ids, later_at),) = rows
        else:
            # and the wake-ups, delivered at its commit, sent only if every row was inserted
            assert tx is None, "messages only go without a caller's transaction"
            rows = await self._insert_alone(
                self.sql.create_first_notify_alone, [*args, *messages], jobs
            )
            ((statement_at, count, inserted, later_ids, later_at, _sent),) = rows
        if count != len(jobs):
            # In the caller's transaction an id taken by a stored job (or earlier in this batch) was
            # skipped: undo the rest and report the first such id in input order.
            taken = set(inserted or ())
            for new in jobs:
                if new.id not in taken:
                    if inserted:
                        await self._fetch(self.sql.undo_create, [inserted], tx)
                    raise DuplicateJobIdError(new.id)
                taken.discard(new.id)  # a second use of an id in the batch is a clash too
            raise AssertionError(f"{count} rows inserted for {len(jobs)} distinct new ids")
        later = (
            {job_id: utc(at) for job_id, at in zip(later_ids, later_at, strict=True)}
            if later_ids
            else None
        )
        return inserted_jobs(jobs, created_at=utc(statement_at), later=later)

    async def _insert_alone(
        self, sql: Sql, args: Sequence[Any], jobs: Sequence[NewJob], *, repeats: bool = True
    ) -> list[Row]:
        """Run an ``*_alone`` create statement without a caller's transaction: it commits on its
        own, so it fails rather than commit part of a batch whose id is taken (a worker could
        otherwise claim a job whose start raised). The id is then found with a read: see
        :meth:`_insert_again`."""
        self._check_open()
        try:
            # no caller's transaction: no aborted one to report
            return await self.provider.fetch(sql, args, None)
        except Exception as exc:
            return await self._insert_again(exc, sql, args, jobs, repeats=repeats)

    async def _insert_again(
        self,
        error: Exception,
        sql: Sql,
        args: Sequence[Any],
        jobs: Sequence[NewJob],
        *,
        repeats: bool = True,
    ) -> list[Row]:
        """After ``error`` of an ``*_alone`` create statement (see :meth:`_insert_alone`): unless
        it is not about a taken id, raise :class:`DuplicateJobIdError` for the first id, in input
        order, that a stored job holds (or, with ``repeats``, that an earlier job of the batch
        has). If none is taken any more (the job holding it was deleted meanwhile), try again, a
        few times in all at most."""
        for tries_left in reversed(range(_MAX_CLASH_RETRIES - 1)):
            if not _id_taken(error):
                raise error
            rows = await self._fetch(self.sql.stored_ids, [[new.id for new in jobs]], None)
            stored = {row[0] for row in rows}
            seen: set[str] = set()
            for new in jobs:
                if new.id in stored or (repeats and new.id in seen):
                    raise DuplicateJobIdError(new.id)
                seen.add(new.id)
            try:
                return await self.provider.fetch(sql, args, None)
            except Exception as exc:
                if not tries_left:
                    raise
                error = exc
        raise error  # pragma: no cover - the last try raises

    async def _created(
        self, jobs: Sequence[NewJob], rows: list[Row], tx: TxT | None
    ) -> list[CreatedJob]:
        """Assemble the results from the rows of :data:`CREATE` (see :class:`CreateRow`)."""
        if rows and rows[0][CreateRow.KIND] == CreateRow.CLASHES:
            clash = rows[0][CreateRow.CLASH]
            if clash is not None:
                raise DuplicateJobIdError(clash)
        found: dict[int, StoredJob] = {}
        inserted: dict[tuple[str, int], StoredJob] = {}
        for row in rows:
            kind = row[CreateRow.KIND]
            if kind == CreateRow.MATCHED:
                found[row[CreateRow.LEADER]] = job_from_row(row, CreateRow.JOB)
            elif kind == CreateRow.INSERTED:
                job = job_from_row(row, CreateRow.JOB)
                inserted[(job.chain_id, job.chain_index)] = job
        leaders: dict[tuple[Any, ...], int] = {}
        results: list[CreatedJob] = []
        missing: list[int] = []
        for ordinal, new in enumerate(jobs, start=1):
            if new.chain_id is not None:
                group: tuple[Any, ...] = ("c", new.chain_id, new.chain_index)
            elif new.deduplication is not None:
                group = ("d", new.chain_type_name, new.deduplication.key)
            else:
                group = ("o", ordinal)
            leader = leaders.setdefault(group, ordinal)
            if leader != ordinal:
                earlier = results[leader - 1] if leader - 1 < len(results) else None
                if earlier is None:
                    missing.append(ordinal)
                    results.append(CreatedJob(job=None, deduplicated=True))  # type: ignore[arg-type]
                else:
                    results.append(CreatedJob(job=earlier.job, deduplicated=True))
                continue
            if ordinal in found:
                results.append(CreatedJob(job=found[ordinal], deduplicated=True))
                continue
            row_job = inserted.get((new.chain_id or new.id, new.chain_index))
            if row_job is None:
                missing.append(ordinal)
                results.append(CreatedJob(job=None, deduplicated=False))  # type: ignore[arg-type]
                continue
            # a continuation that lost a race for its position gets the winner's row
            results.append(CreatedJob(job=row_job, deduplicated=row_job.id != new.id))
        if missing:
            # A concurrent transaction inserted a first job with one of our ids between our check and
            # our insert: undo what this statement inserted (in the caller's transaction; without
            # one the statement failed instead) and report the id.
            ours = [job.id for job in inserted.values()]
            if ours:
                await self._fetch(self.sql.undo_create, [ours], tx)
            raise DuplicateJobIdError(jobs[missing[0] - 1].id)
        return results

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
        job_ids: list[str] = []
        chain_ids: list[str | None] = []
        contexts: list[str | None] = []
        items: list[int] = []
        for i, (job_id, blockers) in enumerate(links):
            given: Sequence[str | None] = (
                trace_contexts[i] if trace_contexts is not None else [None] * len(blockers)
            )
            if not blockers:
                job_ids.append(job_id)
                chain_ids.append(None)
                contexts.append(None)
                items.append(i)
            for chain_id, context in zip(blockers, given, strict=True):
                job_ids.append(job_id)
                chain_ids.append(chain_id)
                contexts.append(context)
                items.append(i)
        async with self._maybe_transaction(tx) as own:
            return await self._add_blockers(links, [job_ids, chain_ids, contexts, items], own)

    async def _add_blockers(
        self, links: Sequence[tuple[str, Sequence[str]]], args: list[Any], tx: TxT
    ) -> list[BlockersAdded]:
        rows = await self._fetch(self.sql.add_blockers, args, tx)
        R = AddBlockersRow
        first = rows[0]
        missing = first[R.MISSING_ITEM]
        if missing is not None:  # the first item naming a missing job or blocker chain
            if first[R.MISSING_IS_JOB]:
                raise JobNotFoundError(links[missing][0])
            raise ChainNotFoundError(first[R.MISSING_CHAIN])
        states: dict[str, str] = {}
        contexts: dict[str, str | None] = {}
        fresh: list[tuple[int, str]] = []
        jobs: dict[int, StoredJob] = {}
        for row in rows:
            item, chain_id = row[R.ITEM], row[R.CHAIN]
            jobs[item] = job_from_row(row, R.JOB)
            if chain_id is None:
                continue
            states[chain_id] = row[R.TAIL]
            contexts[chain_id] = row[R.CHAIN_TRACE_CONTEXT]
            if row[R.FRESH]:
                fresh.append((item, chain_id))
        pending = [c for c, state in states.items() if state == "follow"]
        followed = set(pending)
        rounds = 0
        while pending:
            # A blocker chain's tail continued while we waited for its lock; its successor committed
            # after our statement began, so lock the tail again with a fresh snapshot (a dependent
            # attached to the old tail alone would be released while its blocker chain is open).
            rounds += 1
            if rounds > _MAX_FOLLOW:  # pragma: no cover - a chain continuing forever under us
                raise RuntimeError("blocker chains kept continuing while being locked")
            for chain_id, state in await self._fetch(self.sql.lock_tails, [pending], tx):
                states[chain_id] = state
            pending = [c for c in pending if states[c] == "follow"]
        if followed:
            increments: dict[str, int] = {}
            seen: set[tuple[str, str]] = set()
            for item, chain_id in fresh:
                job_id = links[item][0]
                if chain_id not in followed or states[chain_id] != "open":
                    continue
                if (job_id, chain_id) in seen:
                    continue
                seen.add((job_id, chain_id))
                increments[job_id] = increments.get(job_id, 0) + 1
            if increments:
                updated = await self._fetch(
                    self.sql.add_open_blockers, [list(increments), list(increments.values())], tx
                )
                latest = {row[JOB_ID]: job_from_row(row) for row in updated}
                for item, job in list(jobs.items()):
                    jobs[item] = latest.get(job.id, job)
        results: list[BlockersAdded] = []
        for i, (_, blockers) in enumerate(links):
            open_ids = list(dict.fromkeys(c for c in blockers if states.get(c) == "open"))
            results.append(
                BlockersAdded(
                    job=jobs[i],
                    open_blocker_chain_ids=open_ids,
                    blocker_chain_trace_contexts=[contexts.get(c) for c in blockers],
                )
            )
        return results

    # -- reading ----------------------------------------------------------------------------------

    async def get_job(
        self, job_id: str, *, lock: bool = False, tx: TxT | None = None
    ) -> StoredJob | None:
        self._check_open()
        sql = self.sql.get_job_locked if lock else self.sql.get_job
        rows = await self._fetch(sql, [job_id], tx)
        return job_from_row(rows[0]) if rows else None

    async def get_chain(
        self, chain_id: str, *, lock: bool = False, tx: TxT | None = None
    ) -> StoredChain | None:
        self._check_open()
        sql = self.sql.get_chain_locked if lock else self.sql.get_chain
        for _ in range(_MAX_FOLLOW):
            rows = await self._fetch(sql, [chain_id], tx)
            if not rows:
                return None
            chain = chain_from_row(rows[0])
            if not lock or chain.tail.succeeded_by_job_id is None:
                return chain
            # The tail continued while we waited for its lock: read again to lock the new tail.
        raise RuntimeError("the chain kept continuing while being locked")  # pragma: no cover

    async def get_job_blockers(self, job_id: str, *, tx: TxT | None = None) -> list[StoredChain]:
        self._check_open()
        rows = await self._fetch(self.sql.get_job_blockers, [job_id], tx)
        return [chain_from_row(row) for row in rows]

    async def next_due(
        self, type_names: Sequence[str], *, tx: TxT | None = None
    ) -> timedelta | None:
        self._check_open()
        types = list(dict.fromkeys(type_names))
        if not types:
            return None
        rows = await self._fetch(self.sql.next_due, [types], tx)
        earliest, now = rows[0]
        if earliest is None:
            return None
        return max(utc(earliest) - utc(now), timedelta(0))

    async def get_queue_stats(
        self, type_names: Sequence[str] | None = None, *, tx: TxT | None = None
    ) -> list[QueueStats]:
        if type_names is None:
            rows = await self._fetch(self.sql.queue_stats, [], tx)
        elif not type_names:
            return []
        else:
            rows = await self._fetch(self.sql.queue_stats_of, [sorted(set(type_names))], tx)
        found: dict[str, dict[str, Any]] = {}
        for kind, type_name, first, second, age in rows:
            entry = found.setdefault(type_name, {})
            if kind == 0:
                entry["ready"], entry["scheduled"] = first, second
                if age is not None:
                    entry["oldest_ready_age"] = timedelta(seconds=max(age, 0.0))
            elif kind == 1:
                entry["running"], entry["lease_expired"] = first, second
            else:
                entry["blocked"] = first
        return queue_stats_in_order(
            [QueueStats(name, **entry) for name, entry in found.items()], type_names
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
        p = _Params()
        where = ["r.chain_index = 0"]
        if filter.type_names is not None:
            where.append(f"r.type_name = ANY({p.add(list(filter.type_names), 'text[]')})")
        if filter.chain_ids is not None:
            ids = list(filter.chain_ids)
            where.append(f"r.id = ANY({p.add(ids, 'text[]')}::uuid[])")
        if filter.job_ids is not None:
            ids = list(filter.job_ids)
            where.append(
                f"r.id IN (SELECT m.chain_id FROM {{job}} m "
                f"WHERE m.id = ANY({p.add(ids, 'text[]')}::uuid[]))"
            )
        if filter.status is not None:
            closed = "(t.outcome IS NOT NULL AND t.succeeded_by_job_id IS NULL)"
            where.append(closed if filter.status == "closed" else f"NOT {closed}")
        if filter.root_only:
            where.append(
                "NOT EXISTS (SELECT 1 FROM {blocker} b WHERE b.blocked_by_chain_id = r.id)"
            )
        if filter.deduplication_keys is not None:
            keys = list(filter.deduplication_keys)
            where.append(f"r.deduplication_key = ANY({p.add(keys, 'text[]')})")
        self._time_filters(where, p, "r", filter.created_from, filter.created_to)
        self._keyset(where, p, "r", after, desc)
        direction = "DESC" if desc else "ASC"
        sql = (
            f"SELECT {cols('r')}, {cols('t')} FROM {{job}} r "
            f"CROSS JOIN LATERAL {tail_of('r.id')} t "
            f"WHERE {' AND '.join(where)} "
            f"ORDER BY r.created_at {direction}, r.id {direction} "
            f"LIMIT {_limit(limit)}"
        )
        rows = await self._fetch(self._sql(sql), p.values, tx)
        return chains_page([chain_from_row(row) for row in rows], limit)

    async def get_job_activity(
        self, *, window: timedelta, buckets: int, tx: TxT | None = None
    ) -> JobActivity:
        self._check_open()
        rows = await self._fetch(
            self.sql.job_activity, [window.total_seconds(), float(buckets)], tx
        )
        now: datetime | None = None
        counts: list[StatusCount] = []
        closed: dict[tuple[int, str], int] = {}
        workers: list[WorkerActivity] = []
        for kind, name, status, n, index, moment in rows:
            if kind == "c":
                counts.append(StatusCount(name, status, n))
            elif kind == "b":
                closed[(index, status)] = n
            elif kind == "w":
                workers.append(WorkerActivity(name, n, utc(moment)))
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
        p = _Params()
        where = ["true"]
        if filter.type_names is not None:
            where.append(f"j.type_name = ANY({p.add(list(filter.type_names), 'text[]')})")
        if filter.statuses is not None:
            where.append(f"({status_sql('j')}) = ANY({p.add(list(filter.statuses), 'text[]')})")
            implied = {STATUS_PREDICATES.get(status) for status in filter.statuses}
            if filter.statuses and None not in implied:
                # every status asked for has a partial index: read the jobs from those indexes
                arms = sorted(f"({predicate.format(a='j')})" for predicate in implied if predicate)
                where.append(f"({' OR '.join(arms)})")
        if filter.job_ids is not None:
            ids = list(filter.job_ids)
            where.append(f"j.id = ANY({p.add(ids, 'text[]')}::uuid[])")
        if filter.chain_ids is not None:
            ids = list(filter.chain_ids)
            chains = f"ANY({p.add(ids, 'text[]')}::uuid[])"
            where.append(f"j.chain_id = {chains} AND (j.id = {chains} OR j.chain_index > 0)")
        if filter.chain_type_names is not None:
            names = list(filter.chain_type_names)
            where.append(f"j.chain_type_name = ANY({p.add(names, 'text[]')})")
        self._time_filters(where, p, "j", filter.created_from, filter.created_to)
        self._keyset(where, p, "j", after, desc)
        direction = "DESC" if desc else "ASC"
        sql = (
            f"SELECT {cols('j')} FROM {{job}} j WHERE {' AND '.join(where)} "
            f"ORDER BY j.created_at {direction}, j.id {direction} "
            f"LIMIT {_limit(limit)}"
        )
        rows = await self._fetch(self._sql(sql), p.values, tx)
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
        p = _Params()
        chain = f"{p.add(chain_id, 'text')}::uuid"
        past = ""
        if after is not None:
            past = f" AND {{a}}.chain_index {'<' if desc else '>'} {p.add(after, 'int')}"
        direction = "DESC" if desc else "ASC"
        page = _limit(limit)
        # the first job by its key, and a page of the continuations walked in order on the chain
        # position index (which holds only them): at most a page and one more row to sort, however
        # long the chain
        sql = (
            f"SELECT {cols('j')} FROM ("
            f"(SELECT * FROM {{job}} f WHERE f.id = {chain} AND f.chain_id = {chain}"
            f"{past.format(a='f')}) UNION ALL "
            f"(SELECT * FROM {{job}} n WHERE n.chain_id = {chain} AND n.chain_index > 0"
            f"{past.format(a='n')} ORDER BY n.chain_index {direction} LIMIT {page})"
            f") j ORDER BY j.chain_index {direction} LIMIT {page}"
        )
        rows = await self._fetch(self._sql(sql), p.values, tx)
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
        p = _Params()
        where = [
            f"j.id IN (SELECT b.job_id FROM {{blocker}} b "
            f"WHERE b.blocked_by_chain_id = {p.add(chain_id, 'text')}::uuid)"
        ]
        self._keyset(where, p, "j", after, desc)
        direction = "DESC" if desc else "ASC"
        sql = (
            f"SELECT {cols('j')} FROM {{job}} j WHERE {' AND '.join(where)} "
            f"ORDER BY j.created_at {direction}, j.id {direction} "
            f"LIMIT {_limit(limit)}"
        )
        rows = await self._fetch(self._sql(sql), p.values, tx)
        return blocked_jobs_page([job_from_row(row) for row in rows], limit)

    @staticmethod
    def _time_filters(
        where: list[str], p: _Params, a: str, start: datetime | None, end: datetime | None
    ) -> None:
        if start is not None:
            where.append(f"{a}.created_at >= {p.add(start, 'timestamptz')}")
        if end is not None:
            where.append(f"{a}.created_at < {p.add(end, 'timestamptz')}")

    @staticmethod
    def _keyset(
        where: list[str], p: _Params, a: str, after: tuple[datetime, str] | None, desc: bool
    ) -> None:
        """Rows after the cursor position ``after`` (a ``created_at`` and an id) in list order."""
        if after is None:
            return
        at, row_id = after
        op = "<" if desc else ">"
        row = f"{p.add(row_id, 'text')}::uuid"
        time = p.add(at, "timestamptz")
        if at == UNREADABLE_TIME:
            # The page ended on a job whose created_at Python cannot read (it reads as 1970, but
            # is stored elsewhere in time): go on after the time it holds (the cursor names the
            # job, or the chain, whose id is its first job's).
            time = f"coalesce((SELECT k.created_at FROM {{job}} k WHERE k.id = {row}), {time})"
        where.append(f"({a}.created_at, {a}.id) {op} ({time}, {row})")

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
        secs = [_secs(leases[t]) for t in types]
        bounds = [limits.get(t) for t in types] if limits else []
        if any(b is not None and b.key_limit is not None for b in bounds):
            rows = await self._fetch(
                self.sql.claim_limited,
                [
                    types,
                    secs,
                    max(limit, 0),
                    worker_id,
                    [None if b is None else b.limit for b in bounds],
                    [None if b is None else b.key_limit for b in bounds],
                ],
                tx,
            )
        elif any(b is not None and b.limit is not None for b in bounds):
            rows = await self._fetch(
                self.sql.claim_type_limited,
                [
                    types,
                    secs,
                    max(limit, 0),
                    worker_id,
                    [None if b is None else b.limit for b in bounds],
                ],
                tx,
            )
        else:
            rows = await self._fetch(self.sql.claim, [types, secs, max(limit, 0), worker_id], tx)
        at = ClaimRow.JOB
        jobs = [job_from_claim_row(row, at) for row in rows if row[at] is not None]
        return ClaimResult(jobs=jobs, has_more=bool(rows[0][ClaimRow.HAS_MORE]))

    async def renew_leases(
        self, leases: Mapping[str, timedelta], *, worker_id: str, tx: TxT | None = None
    ) -> LeaseRenewal:
        self._check_open()
        if not leases:
            return LeaseRenewal(renewed={}, lost=[])
        ids = list(leases)
        rows = await self._fetch(
            self.sql.renew, [ids, [_secs(leases[j]) for j in ids], worker_id], tx
        )
        R = RenewRow
        renewed = {row[R.ID]: utc(row[R.LEASED_UNTIL]) for row in rows if row[R.RENEWED]}
        busy = {row[R.ID] for row in rows if not row[R.RENEWED]}  # locked right now: next round
        return LeaseRenewal(
            renewed=renewed, lost=[j for j in leases if j not in renewed and j not in busy]
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
        # _complete's one-job path, inline: every job of the exactly-once path closes here
        args = self._completion_args(completion, worker_id, owner)
        try:  # _fetch, inline (one coroutine less on every job of the exactly-once path)
            rows = await self.provider.fetch(self.sql.complete_one_plain, args, tx)
        except Exception as exc:
            if tx is not None and in_failed_transaction(exc):
                raise TransactionAbortedError(_ABORTED) from exc
            raise
        if rows:
            return complete_result(job_from_row(rows[0], 0, completion.written_output), [], [])
        results, refusals = await self._complete_fully([completion], args, tx)
        result = results[0]
        if result is not None:
            return result
        found, closed_as, leased_by = refusals[1]
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
        if self._closed:
            raise StateAdapterClosedError()
        if len(completions) == 1:
            one = completions[0]
            if one.closes_from_claim:
                # _complete's one-job path of a claimed job, inline, with _fetch's: every job of
                # the exactly-once path closes here (two coroutines less per job). The arguments
                # are _completion_args's: such a completion closes with the output the core
                # encoded (output_text), and has no successor.
                args = [
                    one.job_id,
                    one.outcome,
                    one.output_text,
                    None,
                    one.error,
                    worker_id,
                    owner,
                ]
                try:
                    rows = await self.provider.fetch(self.sql.complete_one_plain_claimed, args, tx)
                except Exception as exc:
                    if tx is not None and in_failed_transaction(exc):
                        raise TransactionAbortedError(_ABORTED) from exc
                    raise
                if rows:
                    return [complete_result(closed_job(one, rows[0], 0, worker_id), [], [])]
                results, _ = await self._complete_fully(completions, args, tx)
                return results
        elif not completions:
            return []
        results, _ = await self._complete(completions, worker_id, owner, tx)
        return results

    async def complete_jobs_publishing(
        self,
        completions: Sequence[Completion],
        closing: Sequence[Notifications],
        announce: Announce,
        publish: NotifyInTransaction,
        *,
        worker_id: str | None,
        owner: str | None = None,
    ) -> list[CompleteResult | None]:
        """:meth:`complete_jobs` without a caller's transaction, publishing what the closes
        announce in the transaction that makes them (see
        :class:`~queuert.state_publishing.SupportsCompletePublishing`). With the publisher of a
        :class:`~queuert_postgres.PgNotifyAdapter` on this database and completions of jobs the
        caller claimed (a worker's group commit), one autocommit statement closes the jobs that
        release nothing and sends their ``closing`` messages; the others (dependents to release, a
        refusal, a write since the statement's snapshot) are closed by the full statement in a
        transaction that publishes ``announce`` of their results."""
        self._check_open()
        if not completions:
            return []
        assert len(closing) == len(completions), "one closing announcement per completion"
        if not (isinstance(publish, PgPublisher) and publish.state is self) or not all(
            c.closes_from_claim for c in completions
        ):
            return await self._complete_publishing(completions, announce, publish, worker_id, owner)
        count = len(completions)
        results: list[CompleteResult | None] = [None] * count
        if count == 1:
            one = completions[0]
            args = self._completion_args(one, worker_id, owner)
            channels, payloads = publish.messages(closing[0])
            if len(channels) == 1:
                statement = self.sql.complete_one_plain_claimed_notify
                args.extend((channels[0], payloads[0]))
            elif not channels:
                statement = self.sql.complete_one_plain_claimed
            else:
                return await self._complete_publishing(
                    completions, announce, publish, worker_id, owner
                )
            rows = await self._fetch(statement, args, None)
            if rows:
                return [complete_result(closed_job(one, rows[0], 0, worker_id), [], [])]
            rest = [0]
        else:
            messages = publish.each(closing)
            claimed_args = self._claimed_args(completions, worker_id, owner)
            if messages is None or claimed_args is None:
                return await self._complete_publishing(
                    completions, announce, publish, worker_id, owner
                )
            args = claimed_args
            if messages[0]:
                statement = self.sql.complete_plain_claimed_notify
                args.extend(messages)
            else:
                statement = self.sql.complete_plain_claimed
            rows = await self._fetch(statement, args, None)
            for row in rows:
                at = row[0] - 1
                results[at] = complete_result(
                    closed_job(completions[at], row, 1, worker_id), [], []
                )
            if len(rows) == count:
                return results
            rest = [i for i, result in enumerate(results) if result is None]
        left, args = self._left_open(completions, rest, worker_id, owner)
        async with self.transaction() as tx:
            found, _ = await self._complete_fully(left, args, tx)
            announced = announce(found)
            if _announces(announced):
                await publish(tx, announced)
        for i, result in zip(rest, found, strict=True):
            results[i] = result
        return results

    async def _complete_publishing(
        self,
        completions: Sequence[Completion],
        announce: Announce,
        publish: NotifyInTransaction,
        worker_id: str | None,
        owner: str | None,
    ) -> list[CompleteResult | None]:
        """:meth:`complete_jobs_publishing` in one transaction that publishes ``announce`` of the
        results with ``publish`` before it commits."""
        async with self.transaction() as tx:
            results, _ = await self._complete(completions, worker_id, owner, tx)
            announced = announce(results)
            if _announces(announced):
                await publish(tx, announced)
        return results

    async def _complete(
        self,
        completions: Sequence[Completion],
        worker_id: str | None,
        owner: str | None,
        tx: TxT | None,
    ) -> tuple[list[CompleteResult | None], dict[int, tuple[bool, str | None, str | None]]]:
        """Close jobs: first with a plain guarded ``UPDATE`` (the common case: nothing to release,
        no refusal, no race), then with the full statement for the completions it did not close
        (it sees what the first one did not: dependents, refusals, a write after its snapshot).

        Returns one result per completion (``None`` when refused) and, per refused ordinal (1-based),
        (row found, its outcome, its lease holder).
        """
        # Jobs the caller claimed (the worker's group commits) come back as built from the claimed
        # job and the few columns the close alone knows; others as their rows.
        claimed = all(c.closes_from_claim for c in completions)
        if len(completions) == 1:
            one = completions[0]
            args = self._completion_args(one, worker_id, owner)
            if claimed:
                rows = await self._fetch(self.sql.complete_one_plain_claimed, args, tx)
                if rows:
                    return [complete_result(closed_job(one, rows[0], 0, worker_id), [], [])], {}
            else:
                rows = await self._fetch(self.sql.complete_one_plain, args, tx)
                if rows:
                    job = job_from_row(rows[0], 0, one.written_output)
                    return [complete_result(job, [], [])], {}
            return await self._complete_fully(completions, args, tx)
        claimed_args = self._claimed_args(completions, worker_id, owner) if claimed else None
        results: list[CompleteResult | None] = [None] * len(completions)
        if claimed_args is not None:
            rows = await self._fetch(self.sql.complete_plain_claimed, claimed_args, tx)
            for row in rows:
                at = row[0] - 1
                results[at] = complete_result(
                    closed_job(completions[at], row, 1, worker_id), [], []
                )
        else:
            args = self._completions_args(completions, worker_id, owner)
            rows = await self._fetch(self.sql.complete_plain, args, tx)
            for row in rows:
                at = row[0] - 1
                job = job_from_row(row, 1, completions[at].written_output)
                results[at] = complete_result(job, [], [])
        if len(rows) == len(completions):
            return results, {}
        rest = [i for i, result in enumerate(results) if result is None]
        left, args = self._left_open(completions, rest, worker_id, owner)
        found, refused = await self._complete_fully(left, args, tx)
        for i, result in zip(rest, found, strict=True):
            results[i] = result
        return results, {rest[ordinal - 1] + 1: why for ordinal, why in refused.items()}

    def _left_open(
        self,
        completions: Sequence[Completion],
        rest: Sequence[int],
        worker_id: str | None,
        owner: str | None,
    ) -> tuple[list[Completion], list[Any]]:
        """The completions at positions ``rest`` (those the plain statement left open) and the
        arguments of the full statement that closes them."""
        left = [completions[i] for i in rest]
        if len(left) == 1:
            return left, self._completion_args(left[0], worker_id, owner)
        return left, self._completions_args(left, worker_id, owner)

    @staticmethod
    def _completion_args(one: Completion, worker_id: str | None, owner: str | None) -> list[Any]:
        """The arguments of the one-job statements."""
        return [
            one.job_id,
            one.outcome,
            one.output_json() if one.closes_with_output else None,
            one.succeeded_by_job_id,
            one.error,
            worker_id,
            owner,
        ]

    @staticmethod
    def _completions_args(
        completions: Sequence[Completion], worker_id: str | None, owner: str | None
    ) -> list[Any]:
        """The arguments of the array statements."""
        count = len(completions)
        outcomes = [c.outcome for c in completions]
        successors = [c.succeeded_by_job_id for c in completions]
        errors = [c.error for c in completions]
        # A column that is all 'completed' or all NULL (the worker's group commits) goes as one
        # NULL array, which unnest pads with NULLs (the statement reads NULL as 'completed'): the
        # driver encodes no element of it.
        return [
            [c.job_id for c in completions],
            None if outcomes.count("completed") == count else outcomes,
            [c.output_json() if c.closes_with_output else None for c in completions],
            None if successors.count(None) == count else successors,
            None if errors.count(None) == count else errors,
            worker_id,
            owner,
        ]

    @staticmethod
    def _claimed_args(
        completions: Sequence[Completion], worker_id: str | None, owner: str | None
    ) -> list[Any] | None:
        """The arguments of :data:`~queuert_postgres._sql.COMPLETE_PLAIN_CLAIMED` for completions
        that each close a claimed job with an output (:attr:`Completion.closes_from_claim`): the
        ids and the outputs' JSON texts as one joined text each. ``None`` in the case that never
        comes from compact JSON, an output holding the separator: the caller sends the array
        form."""
        outputs = MESSAGE_SEPARATOR.join([c.output_json() for c in completions])
        if outputs.count(MESSAGE_SEPARATOR) != len(completions) - 1:
            return None
        ids = ID_SEPARATOR.join([c.job_id for c in completions])
        return [ids, None, outputs, None, None, worker_id, owner]

    async def _complete_fully(
        self, completions: Sequence[Completion], args: list[Any], tx: TxT | None
    ) -> tuple[list[CompleteResult | None], dict[int, tuple[bool, str | None, str | None]]]:
        """:meth:`_complete` with the full statement (``args`` built for it), plus a catch-up
        statement in a rare race (see below)."""
        if len(completions) == 1:
            rows = await self._fetch(self.sql.complete_one, args, tx)
        else:
            rows = await self._fetch(self.sql.complete, args, tx)
        closed: dict[int, StoredJob] = {}
        unblocked: dict[int, list[StoredJob]] = {}
        contexts: dict[int, list[str]] = {}
        refusals: dict[int, tuple[bool, str | None, str | None]] = {}
        moved: dict[int, tuple[str, list[str]]] = {}
        R = CompleteRow
        for row in rows:
            kind, ordinal = row[R.KIND], row[R.ORDINAL]
            if kind == R.CLOSED:
                closed[ordinal] = job_from_row(row, R.JOB)
            elif kind == R.UNBLOCKED:
                unblocked.setdefault(ordinal, []).append(job_from_row(row, R.JOB))
            elif kind == R.TRACE_CONTEXT:
                contexts.setdefault(ordinal, []).append(row[R.TEXT])
            elif kind == R.TAIL_MOVED:
                handled = moved.setdefault(ordinal, (row[R.TEXT], []))[1]
                if row[R.OTHER] is not None:
                    handled.append(row[R.OTHER])
            else:
                assert kind == R.REFUSED
                found = row[R.JOB + JOB_ID] is not None
                refusals[ordinal] = (found, row[R.TEXT], row[R.OTHER])
        if moved:
            # The tail of a chain we closed changed between our snapshot and our lock (a blocker link
            # may have been added and committed in that window, invisible to our statement): release
            # the dependents we could not see, with a fresh snapshot.
            pairs = [(chain, job) for chain, jobs in moved.values() for job in jobs]
            catch_up = [
                [chain for chain, _ in moved.values()],
                list(moved),
                [chain for chain, _ in pairs],
                [job for _, job in pairs],
            ]
            for row in await self._fetch(self.sql.complete_catch_up, catch_up, tx):
                if row[R.KIND] == R.UNBLOCKED:
                    unblocked.setdefault(row[R.ORDINAL], []).append(job_from_row(row, R.JOB))
                else:
                    contexts.setdefault(row[R.ORDINAL], []).append(row[R.TEXT])
        results: list[CompleteResult | None] = []
        for ordinal in range(1, len(completions) + 1):
            job = closed.get(ordinal)
            if job is None:
                results.append(None)
                continue
            released = unblocked.get(ordinal)
            if released is None:
                released = []
            elif len(released) > 1:
                released.sort(key=_created_order)
            results.append(complete_result(job, released, contexts.get(ordinal, [])))
        return results, refusals

    async def reschedule_job(
        self,
        job_id: str,
        *,
        schedule: Schedule | None,
        error: str | None,
        tx: TxT | None = None,
    ) -> StoredJob:
        self._check_open()
        at = schedule.at if schedule is not None else None
        after = (
            _secs(schedule.after) if schedule is not None and schedule.after is not None else None
        )
        rows = await self._fetch(self.sql.reschedule, [job_id, at, after, error], tx)
        if not rows:
            raise JobNotFoundError(job_id)
        return job_from_row(rows[0])

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
        rows = await self._fetch(self.sql.reap, [types, limit, excluded], tx)
        reaped: list[StoredJob] = []
        for row in rows:
            job = job_from_row(row)
            reaped.append(
                replace(
                    job,
                    leased_by=row[ReapRow.LEASED_BY],
                    # (a lease end Python cannot read, edited by hand, is selected as NULL)
                    leased_until=utc(row[ReapRow.LEASED_UNTIL] or UNREADABLE_TIME),
                )
            )
        return reaped

    # -- administration ---------------------------------------------------------------------------

    async def trigger_jobs(self, job_ids: Sequence[str], *, tx: TxT | None = None) -> TriggerResult:
        self._check_open()
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return TriggerResult(triggered=[], not_found=[], not_triggerable=[])
        rows = await self._fetch(self.sql.trigger, [ids], tx)
        triggered: list[StoredJob] = []
        problems: dict[str, str | None] = {}
        R = TriggerRow
        for row in rows:
            if row[R.KIND] == R.TRIGGERED:
                triggered.append(job_from_row(row, R.JOB))
            else:
                problems[row[R.JOB + JOB_ID]] = row[R.STATUS]
        if problems:
            not_found = [j for j in ids if j in problems and problems[j] is None]
            not_triggerable = [(j, problems[j]) for j in ids if problems.get(j) is not None]
            return TriggerResult(
                triggered=[],
                not_found=not_found,
                not_triggerable=not_triggerable,  # type: ignore[arg-type]
            )
        return TriggerResult(triggered=triggered, not_found=[], not_triggerable=[])

    async def delete_chains(
        self, chain_ids: Sequence[str], *, cascade: bool = False, tx: TxT | None = None
    ) -> DeleteResult:
        self._check_open()
        ids = list(dict.fromkeys(chain_ids))
        if not ids:
            return DeleteResult(deleted=[], references=[])
        rows = await self._fetch(self.sql.delete, [ids, cascade], tx)
        R = DeleteRow
        references = [
            BlockerReference(row[R.REF_CHAIN], row[R.REF_JOB])
            for row in rows
            if row[R.KIND] == R.REFERENCE
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
        deleted = [chain_from_row(row, R.ROOT) for row in rows if row[R.KIND] == R.CHAIN]
        return DeleteResult(deleted=deleted, references=[])  # in no particular order
