"""The partitioned layout: migration, partitions created ahead, expired partitions dropped whole
(and kept while something in them is still needed), and the move of an existing installation."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pg_helpers import DSN, Namespace, make_adapter
from queuert import Client, Retention, Worker
from queuert.errors import ConfigurationError, DuplicateJobIdError
from queuert.ids import uuid7
from queuert.observability import AttemptCompleted, ChainsExpired, Event
from queuert.retention import RunRetention
from queuert.state import NewJob, StoredJob
from queuert.storage_maintenance import (
    RunStorageMaintenance,
    StorageMaintenanceResult,
    storage_maintenance_periodic,
)
from queuert_postgres import AsyncpgProvider, Partitioning, PgStateAdapter
from queuert_postgres._partitions import bucket_start, parse_bound, uuid_at
from queuert_postgres._schema import MIGRATION_LOCK_KEY

DAY = timedelta(days=1)


def uuid7_at(moment: datetime) -> str:
    """A version-7 UUID made at ``moment`` (as a client with that clock would make it)."""
    return uuid7_ms(int(moment.timestamp() * 1000))


def uuid7_ms(ms: int) -> str:
    rand = random.getrandbits(74)
    return (
        f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7{rand >> 62:03x}-"
        f"{0x8000 | ((rand >> 48) & 0x3FFF):04x}-{rand & 0xFFFF_FFFF_FFFF:012x}"
    )


def days_ago(n: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(days=n)


async def partitioned(ns: Namespace, *, ahead: int = 1) -> PgStateAdapter[object]:
    provider = await AsyncpgProvider.connect(DSN, min_size=1, max_size=4)
    return PgStateAdapter(
        provider,
        schema=ns.schema,
        table_prefix=ns.prefix,
        partitioning=Partitioning(DAY, ahead=ahead),
    )


@pytest.fixture
async def adapter(namespace: Namespace) -> AsyncIterator[PgStateAdapter[object]]:
    state = await partitioned(namespace)
    await state.migrate()
    try:
        yield state
    finally:
        await state.close()


async def start(state: PgStateAdapter[object], chain_id: str, type_name: str = "t") -> StoredJob:
    (created,) = await state.create_jobs(
        [NewJob(id=chain_id, type_name=type_name, chain_type_name=type_name, input=None)]
    )
    return created.job


async def close(state: PgStateAdapter[object], job_id: str) -> None:
    await state.complete_job(job_id, outcome="completed", worker_id=None, output=1)


async def partition_of(ns: Namespace, job_id: str) -> str:
    conn = await asyncpg.connect(DSN)
    try:
        return str(
            await conn.fetchval(
                f'SELECT tableoid::regclass::text FROM "{ns.schema}"."{ns.prefix}job" '
                "WHERE id = $1::uuid",
                job_id,
            )
        )
    finally:
        await conn.close()


async def test_partitioned_migrate_creates_the_partitions_ahead(
    adapter: PgStateAdapter[object], namespace: Namespace
) -> None:
    names = [b.name for b in await adapter.partitions()]
    today = datetime.now(timezone.utc).strftime("%Y%m%d")
    tomorrow = (datetime.now(timezone.utc) + DAY).strftime("%Y%m%d")
    p = namespace.prefix
    assert names == [
        f"{p}job_phistory",
        f"{p}job_p{today}t0000",
        f"{p}job_p{tomorrow}t0000",
        f"{p}job_pdefault",
    ]
    again = await adapter.migrate()
    assert again.applied == []
    assert "layout_partitioned" in again.skipped
    assert again.unrecognized == []
    job = await start(adapter, uuid7())
    assert await partition_of(namespace, job.id) == f"{namespace.schema}.{p}job_p{today}t0000"


async def test_partitioned_layout_needs_a_partitioned_adapter_and_back(
    namespace: Namespace,
) -> None:
    state = await partitioned(namespace)
    plain = await make_adapter("asyncpg", namespace)
    try:
        await state.migrate()
        with pytest.raises(ConfigurationError, match="partitioned"):
            await plain.migrate()
    finally:
        await state.close()
        await plain.close()


async def test_partitioned_migrate_refuses_a_table_with_jobs(namespace: Namespace) -> None:
    plain = await make_adapter("asyncpg", namespace)
    state = await partitioned(namespace)
    try:
        await plain.migrate()
        await start(plain, uuid7())
        with pytest.raises(ConfigurationError, match="migrate_to_partitioned"):
            await state.migrate()
    finally:
        await state.close()
        await plain.close()


async def test_partitioned_ids_stay_unique_across_partitions(
    adapter: PgStateAdapter[object],
) -> None:
    """A continuation's id (stored in its chain's partition) cannot start another chain."""
    root = await start(adapter, uuid7_at(days_ago(3)))
    follow = uuid7()
    await adapter.create_jobs(
        [
            NewJob(
                id=follow,
                type_name="t",
                chain_type_name="t",
                input=None,
                chain_id=root.id,
                chain_index=1,
            )
        ]
    )
    with pytest.raises(DuplicateJobIdError):
        await start(adapter, follow)
    with pytest.raises(DuplicateJobIdError):
        await adapter.create_jobs(
            [NewJob(id=follow, type_name="t", chain_type_name="t", input=None, fresh_id=False)]
        )


async def test_partition_of_expired_chains_is_dropped_whole(
    adapter: PgStateAdapter[object], namespace: Namespace
) -> None:
    old = [await start(adapter, uuid7_at(days_ago(3 + i / 10))) for i in range(5)]
    follow = uuid7()
    await adapter.create_jobs(
        [
            NewJob(
                id=follow,
                type_name="t",
                chain_type_name="t",
                input=None,
                chain_id=old[0].id,
                chain_index=1,
            )
        ]
    )
    await adapter.complete_job(
        old[0].id, outcome="completed", worker_id=None, succeeded_by_job_id=follow
    )
    for job in [*old[1:]]:
        await close(adapter, job.id)
    await close(adapter, follow)
    # a closed chain of the history waits for another one of it: both go together
    (waits,) = await adapter.create_jobs(
        [NewJob(id=uuid7_at(days_ago(3)), type_name="t", chain_type_name="t", input=None)]
    )
    await adapter.add_blockers([(waits.job.id, [old[1].id])])
    await close(adapter, waits.job.id)
    recent = await start(adapter, uuid7())
    await close(adapter, recent.id)
    assert await partition_of(namespace, old[0].id) == (
        f"{namespace.schema}.{namespace.prefix}job_phistory"
    )

    expiry = await adapter.maintain_storage(closed_before=datetime.now(timezone.utc))

    assert (expiry.partitions_dropped, expiry.chains, expiry.jobs) == (1, 6, 7)
    assert f"{namespace.prefix}job_phistory" not in [b.name for b in await adapter.partitions()]
    for job in [*old, waits.job]:
        assert await adapter.get_chain(job.id) is None
    assert await adapter.get_job(follow) is None
    assert await adapter.get_chain(recent.id) is not None, "a partition in use was dropped"
    conn = await asyncpg.connect(DSN)
    try:
        links = await conn.fetchval(
            f'SELECT count(*) FROM "{namespace.schema}"."{namespace.prefix}job_blocker"'
        )
    finally:
        await conn.close()
    assert links == 0
    # an id of the dropped range now lands in the default partition
    late = await start(adapter, uuid7_at(days_ago(4)))
    assert await partition_of(namespace, late.id) == (
        f"{namespace.schema}.{namespace.prefix}job_pdefault"
    )


async def test_a_drop_brings_the_hot_partitions_statistics_up_to_date_first(
    adapter: PgStateAdapter[object], namespace: Namespace
) -> None:
    """Detaching makes every connection plan its statements again with the partitions' statistics
    of that moment. Today's partition, analysed while it was empty and filled since, must not be
    planned as empty (the plans then read it row by row for every job of a batch): the drop
    analyses it first."""
    expired = await start(adapter, uuid7_at(days_ago(3)))
    await close(adapter, expired.id)
    first = await start(adapter, uuid7())
    today = await partition_of(namespace, first.id)
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f"DELETE FROM {today}")
        await conn.execute(f"ANALYZE {today}")  # statistics of an empty partition
        await adapter.create_jobs(
            [NewJob(id=uuid7(), type_name="t", chain_type_name="t", input=None) for _ in range(300)]
        )
        reltuples = f"SELECT reltuples FROM pg_class WHERE oid = '{today}'::regclass"
        assert await conn.fetchval(reltuples) <= 0

        expiry = await adapter.maintain_storage(closed_before=datetime.now(timezone.utc))

        assert expiry.partitions_dropped == 1
        assert await conn.fetchval(reltuples) == 300
    finally:
        await conn.close()


async def test_partition_detached_by_hand_is_left_alone(
    adapter: PgStateAdapter[object], namespace: Namespace
) -> None:
    """A partition someone detached to keep (an archive) is not taken for one a stopped run left
    to drop: maintenance runs do not touch it."""
    old = await start(adapter, uuid7_at(days_ago(3)))
    await close(adapter, old.id)
    history = f'"{namespace.schema}"."{namespace.prefix}job_phistory"'
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(
            f'ALTER TABLE "{namespace.schema}"."{namespace.prefix}job" DETACH PARTITION {history}'
        )

        expiry = await adapter.maintain_storage(closed_before=datetime.now(timezone.utc))

        assert expiry.partitions_dropped == 0
        assert await conn.fetchval(f"SELECT count(*) FROM {history}") == 1
    finally:
        await conn.close()


class _StopBeforeTheCount(Exception):
    """Stands for a maintainer that stops (crash, lost connection) after it detached a partition."""


async def test_run_stopped_after_the_detach_is_finished_by_the_next(
    adapter: PgStateAdapter[object], namespace: Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter's own drop, stopped where the detach has committed and the count and drop have
    not: the chains are gone from the job table, the detached table remains, and the next run
    counts it, drops it and reports it."""
    old = [await start(adapter, uuid7_at(days_ago(3 + i))) for i in range(2)]
    for job in old:
        await close(adapter, job.id)
    fetch = adapter.provider.fetch

    async def stopping(sql: object, args: object, tx: object) -> object:
        if "count(*) FILTER" in str(sql):
            raise _StopBeforeTheCount
        return await fetch(sql, args, tx)  # type: ignore[arg-type]

    monkeypatch.setattr(adapter.provider, "fetch", stopping)
    with pytest.raises(_StopBeforeTheCount):
        await adapter.maintain_storage(closed_before=datetime.now(timezone.utc))
    monkeypatch.undo()
    left = f'"{namespace.schema}"."{namespace.prefix}job_pdrop_history"'
    conn = await asyncpg.connect(DSN)
    try:
        assert await conn.fetchval(f"SELECT count(*) FROM {left}") == 2
        assert f"{namespace.prefix}job_phistory" not in [b.name for b in await adapter.partitions()]
        assert await adapter.get_chain(old[0].id) is None

        expiry = await adapter.maintain_storage()

        assert (expiry.partitions_dropped, expiry.chains, expiry.jobs) == (1, 2, 2)
        assert await conn.fetchval("SELECT to_regclass($1::text)", left) is None
        assert (await adapter.maintain_storage()).partitions_dropped == 0
    finally:
        await conn.close()


@pytest.mark.parametrize("analysed", [True, False])
async def test_partition_counts_estimated_from_the_catalog(
    namespace: Namespace, analysed: bool
) -> None:
    """``counts="estimated"`` reports what the last VACUUM or ANALYZE recorded of the partition (its
    rows, the share of first jobs), flagged as an estimate; a partition never analysed is counted."""
    provider = await AsyncpgProvider.connect(DSN, min_size=1, max_size=4)
    state = PgStateAdapter(
        provider,
        schema=namespace.schema,
        table_prefix=namespace.prefix,
        partitioning=Partitioning(DAY, ahead=1, counts="estimated"),
    )
    await state.migrate()
    conn = await asyncpg.connect(DSN)
    try:
        first = [await start(state, uuid7_at(days_ago(3 + i))) for i in range(4)]
        follow = uuid7()
        await state.create_jobs(
            [
                NewJob(
                    id=follow,
                    type_name="t",
                    chain_type_name="t",
                    input=None,
                    chain_id=first[0].id,
                    chain_index=1,
                )
            ]
        )
        await state.complete_job(
            first[0].id, outcome="completed", worker_id=None, succeeded_by_job_id=follow
        )
        for job_id in [*(j.id for j in first[1:]), follow]:
            await close(state, job_id)
        if analysed:
            await conn.execute(
                f'VACUUM ANALYZE "{namespace.schema}"."{namespace.prefix}job_phistory"'
            )

        expiry = await state.maintain_storage(closed_before=datetime.now(timezone.utc))

        assert (expiry.partitions_dropped, expiry.chains, expiry.jobs) == (1, 4, 5)
        assert expiry.estimated is analysed
    finally:
        await conn.close()
        await state.close()


async def impatient_state(namespace: Namespace) -> PgStateAdapter[Any]:
    """A migrated adapter over daily partitions whose maintenance waits at most 200 ms for the
    job table's locks."""
    provider = await AsyncpgProvider.connect(DSN, min_size=1, max_size=4)
    state = PgStateAdapter(
        provider,
        schema=namespace.schema,
        table_prefix=namespace.prefix,
        partitioning=Partitioning(DAY, ahead=1, lock_timeout=timedelta(milliseconds=200)),
    )
    await state.migrate()
    return state


async def test_partition_whose_lock_is_not_granted_waits_for_the_next_run(
    namespace: Namespace,
) -> None:
    """Detaching waits at most ``lock_timeout`` for the job table: a transaction that holds it
    makes the run keep the partition, whole and attached, and the next run drops it."""
    state = await impatient_state(namespace)
    conn = await asyncpg.connect(DSN)
    try:
        old = await start(state, uuid7_at(days_ago(3)))
        await close(state, old.id)
        holding = conn.transaction()
        await holding.start()
        await conn.execute(f'LOCK TABLE "{namespace.schema}"."{namespace.prefix}job" IN SHARE MODE')

        kept = await state.maintain_storage(closed_before=datetime.now(timezone.utc))

        await holding.rollback()
        assert (kept.partitions_dropped, kept.partitions_kept) == (0, 1)
        assert f"{namespace.prefix}job_phistory" in [b.name for b in await state.partitions()]
        assert await state.get_chain(old.id) is not None
        later = await state.maintain_storage(closed_before=datetime.now(timezone.utc))
        assert (later.partitions_dropped, later.chains) == (1, 1)
    finally:
        await conn.close()
        await state.close()


async def test_a_migration_running_meanwhile_delays_a_detach_without_timing_it_out(
    namespace: Namespace,
) -> None:
    """``lock_timeout`` bounds the wait for the job table only: a migration in the same database
    (any installation's: they share the migration lock) holding the maintainers' lock makes the
    run wait for it, then drop the partition, not give up after ``lock_timeout``."""
    state = await impatient_state(namespace)
    conn = await asyncpg.connect(DSN)
    try:
        old = await start(state, uuid7_at(days_ago(3)))
        await close(state, old.id)
        migrating = conn.transaction()
        await migrating.start()
        await conn.execute("SELECT pg_advisory_xact_lock($1::int8)", MIGRATION_LOCK_KEY)
        run = asyncio.create_task(state.maintain_storage(closed_before=datetime.now(timezone.utc)))
        holder = await conn.fetchval("SELECT pg_backend_pid()")
        watcher = await asyncpg.connect(DSN)
        try:
            # the run waits for the migration lock, past twice its lock_timeout
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not await watcher.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND $1 = ANY(pg_blocking_pids(pid))"
                " AND clock_timestamp() - query_start > interval '400 milliseconds')",
                holder,
            ):
                assert not run.done(), run.result()
                assert loop.time() < deadline, "the run never waited past its lock_timeout"
                await asyncio.sleep(0.005)
        finally:
            await watcher.close()
        await migrating.rollback()
        done = await run
        assert (done.partitions_dropped, done.chains) == (1, 1)
    finally:
        await conn.close()
        await state.close()


@pytest.mark.parametrize("needed", ["open", "closed-later", "waited-on"])
async def test_partition_still_needed_is_kept(adapter: PgStateAdapter[object], needed: str) -> None:
    done = await start(adapter, uuid7_at(days_ago(3)))
    await close(adapter, done.id)
    other = await start(adapter, uuid7_at(days_ago(2)))
    cutoff = datetime.now(timezone.utc)
    if needed == "closed-later":
        await close(adapter, other.id)
        # the history partition ends at the start of today; its chain closed after that
        cutoff = cutoff.replace(hour=0, minute=0, second=0, microsecond=0)
    elif needed == "waited-on":
        await close(adapter, other.id)
        waiting = await start(adapter, uuid7())  # an open chain of today's partition
        await adapter.add_blockers([(waiting.id, [done.id])])

    expiry = await adapter.maintain_storage(closed_before=cutoff)

    assert expiry.partitions_dropped == 0
    assert expiry.partitions_kept == 1
    assert await adapter.get_chain(done.id) is not None
    assert await adapter.get_chain(other.id) is not None


async def test_partition_created_ahead_takes_its_rows_from_the_default(
    adapter: PgStateAdapter[object], namespace: Namespace
) -> None:
    ahead = datetime.now(timezone.utc) + timedelta(days=4)
    early = await start(adapter, uuid7_at(ahead))
    assert await partition_of(namespace, early.id) == (
        f"{namespace.schema}.{namespace.prefix}job_pdefault"
    )
    wider = await partitioned(namespace, ahead=6)
    try:
        expiry = await wider.maintain_storage()
        assert expiry.partitions_created == 5
        expected = f"{namespace.prefix}job_p{ahead.strftime('%Y%m%d')}t0000"
        assert await partition_of(namespace, early.id) == f"{namespace.schema}.{expected}"
        assert (await wider.get_chain(early.id)) is not None
        assert (await wider.maintain_storage()).partitions_created == 0
    finally:
        await wider.close()


async def test_migrate_to_partitioned_moves_an_existing_installation(namespace: Namespace) -> None:
    plain = await make_adapter("asyncpg", namespace)
    state = await partitioned(namespace)
    try:
        await plain.migrate()
        old = await start(plain, uuid7_at(days_ago(10)))
        blocker = await start(plain, uuid7())
        (waiting,) = await plain.create_jobs(
            [NewJob(id=uuid7(), type_name="w", chain_type_name="w", input={"x": 1})]
        )
        await plain.add_blockers([(waiting.job.id, [blocker.id])])
        await close(plain, old.id)
        before = [await plain.get_job(j) for j in (old.id, blocker.id, waiting.job.id)]

        result = await state.migrate_to_partitioned()

        assert result.applied == ["layout_partitioned"]
        assert [await state.get_job(j) for j in (old.id, blocker.id, waiting.job.id)] == before
        assert await partition_of(namespace, old.id) == (
            f"{namespace.schema}.{namespace.prefix}job_phistory"
        )
        # the links still hold: closing the blocker releases the waiting job
        closed = await state.complete_job(
            blocker.id, outcome="completed", worker_id=None, output=None
        )
        assert [j.id for j in closed.unblocked] == [waiting.job.id]
        assert (await state.migrate_to_partitioned()).applied == []
        assert (await state.migrate()).applied == []
        expiry = await state.maintain_storage(closed_before=datetime.now(timezone.utc))
        assert (expiry.partitions_dropped, expiry.chains) == (1, 1)
    finally:
        await state.close()
        await plain.close()


class _Dropped:
    """Observability that records the retention batches and signals one that dropped partitions."""

    def __init__(self) -> None:
        self.events: list[ChainsExpired] = []
        self.dropped = asyncio.Event()

    def emit(self, event: Event) -> None:
        if isinstance(event, ChainsExpired):
            self.events.append(event)
            if event.partitions:
                self.dropped.set()


async def test_retention_run_drops_the_partition_and_reports_it(namespace: Namespace) -> None:
    state = await partitioned(namespace)
    await state.migrate()
    seen = _Dropped()
    client = Client(state, job_types=[RunRetention], observability=seen)
    try:
        for i in range(3):
            await close(state, (await start(state, uuid7_at(days_ago(2 + i)))).id)
        worker = Worker(client, retention=Retention(closed_for=0, every=0.2))
        async with worker:
            await asyncio.wait_for(seen.dropped.wait(), 20)
        (expired,) = [e for e in seen.events if e.partitions]
        assert (expired.deleted, expired.jobs, expired.partitions) == (3, 3, 1)
    finally:
        await client.close()
        await state.close()


class _Maintained:
    """Observability that signals a completed storage maintenance run."""

    def __init__(self) -> None:
        self.done = asyncio.Event()

    def emit(self, event: Event) -> None:
        if (
            isinstance(event, AttemptCompleted)
            and event.job.type_name == RunStorageMaintenance.type_name
        ):
            self.done.set()


async def test_workers_create_partitions_ahead_without_retention(namespace: Namespace) -> None:
    """A worker with no retention still runs the layout's maintenance (a periodic chain, the first
    at once): the coming partitions are created ahead, so new chains land in their bucket, not in
    the default partition."""
    state = await partitioned(namespace)  # one bucket ahead
    await state.migrate()
    wider = await partitioned(namespace, ahead=3)
    seen = _Maintained()
    client = Client(wider, observability=seen)
    try:
        in_three_days = datetime.now(timezone.utc) + timedelta(days=3)
        bucket = f"{namespace.prefix}job_p{in_three_days.strftime('%Y%m%d')}t0000"
        assert bucket not in [b.name for b in await wider.partitions()]
        async with Worker(client):
            await asyncio.wait_for(seen.done.wait(), 20)
        (run,) = (await client.list_chains(type_names=[RunStorageMaintenance])).items
        assert run.output == StorageMaintenanceResult(partitions_created=2)
        assert bucket in [b.name for b in await wider.partitions()]
        early = await start(wider, uuid7_at(in_three_days))
        assert await partition_of(namespace, early.id) == f"{namespace.schema}.{bucket}"
    finally:
        await client.close()
        await wider.close()
        await state.close()


def test_storage_maintenance_runs_only_where_the_layout_wants_them() -> None:
    on = PgStateAdapter(object(), partitioning=Partitioning(DAY))
    assert on.storage_maintenance_every == timedelta(hours=1)
    assert storage_maintenance_periodic(on) is not None
    minutes = PgStateAdapter(object(), partitioning=Partitioning(timedelta(minutes=10)))
    assert minutes.storage_maintenance_every == timedelta(minutes=5)
    off = PgStateAdapter(object(), partitioning=Partitioning(DAY, maintain=False))
    assert storage_maintenance_periodic(off) is None
    assert storage_maintenance_periodic(PgStateAdapter(object())) is None


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**48 - 1 - 10_000 * 60_000),
    st.integers(min_value=1, max_value=10_000),
)
def test_partition_bounds_hold_the_ids_of_their_time(ms: int, minutes: int) -> None:
    step = minutes * 60_000
    low = bucket_start(ms, step)
    bounds = parse_bound("p", f"FOR VALUES FROM ('{uuid_at(low)}') TO ('{uuid_at(low + step)}')")
    made = uuid7_ms(ms)
    assert bounds.low is not None and bounds.high is not None
    assert bounds.low <= made < bounds.high
    assert not (made < uuid_at(low)) and made < uuid_at(low + step)
    assert parse_bound("d", "DEFAULT").is_default
    assert parse_bound("h", f"FOR VALUES FROM (MINVALUE) TO ('{uuid_at(low)}')").low is None


def test_partitioning_is_validated() -> None:
    for bad in (timedelta(seconds=30), timedelta(minutes=1, seconds=1), 0):
        with pytest.raises(Exception, match="interval"):
            Partitioning(bad)
    with pytest.raises(ConfigurationError):
        Partitioning(ahead=0)
    with pytest.raises(ConfigurationError, match="counts"):
        Partitioning(counts="roughly")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        PgStateAdapter(object(), partitioning="daily")  # type: ignore[arg-type]
