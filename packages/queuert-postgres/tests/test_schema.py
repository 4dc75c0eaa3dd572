"""Schema placement, identifier validation and migrations (idempotent, concurrent, reported)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest
from pg_helpers import (
    DSN,
    Namespace,
    backlog,
    drop_namespace,
    explain,
    make_adapter,
    unique_schema,
)
from queuert.errors import InvalidIdentifierError
from queuert.ids import uuid7
from queuert.state import JobFilter, NewJob
from queuert_postgres import MIGRATIONS, AsyncpgProvider, PgStateAdapter


@pytest.mark.parametrize(
    ("schema", "prefix"),
    [
        ("bad-schema", "queuert_"),
        ("1abc", "queuert_"),
        ('x"; drop table y; --', "queuert_"),
        ("", "queuert_"),
        ("ok", "bad prefix"),
        ("ok", "pre-fix_"),
        ("ok", "p" * 41),
    ],
)
async def test_invalid_identifiers_are_refused_before_connecting(schema: str, prefix: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        await PgStateAdapter.connect(
            "postgresql://nobody@127.0.0.1:1/none", schema=schema, table_prefix=prefix
        )


async def test_empty_prefix_is_allowed(namespace: Namespace) -> None:
    ns = Namespace(namespace.schema, "")
    adapter = await make_adapter("asyncpg", ns)
    try:
        result = await adapter.migrate()
        assert result.applied == [m.name for m in MIGRATIONS]
    finally:
        await adapter.close()


async def tables_in(schema: str) -> set[str]:
    conn = await asyncpg.connect(DSN)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
        return {r[0] for r in rows}
    finally:
        await conn.close()


async def test_tables_live_in_the_configured_schema_with_the_prefix() -> None:
    ns = Namespace(unique_schema(), "acme_")
    adapter = await make_adapter("asyncpg", ns)
    try:
        result = await adapter.migrate()
        assert result.applied == [m.name for m in MIGRATIONS]
        assert result.skipped == [] and result.unrecognized == []
        assert await tables_in(ns.schema) == {
            "acme_job",
            "acme_job_blocker",
            "acme_job_limit",
            "acme_migration",
        }
        conn = await asyncpg.connect(DSN)
        try:
            options = await conn.fetchval(
                "SELECT reloptions FROM pg_class WHERE oid = $1::regclass",
                f'"{ns.schema}"."acme_job"',
            )
            assert "fillfactor=75" in options
            indexes = {
                r[0]
                for r in await conn.fetch(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = $1", ns.schema
                )
            }
            assert {"acme_job_claim_idx", "acme_job_leased_idx", "acme_job_dedup_idx"} <= indexes
            # each claim and completion writes into every index that holds its row: only the hot
            # paths, one listing, and partial indexes a claim never writes into (closed, failed or
            # cancelled jobs, chains with a deduplication key)
            assert indexes == {
                "acme_job_pkey",
                "acme_job_chain_continuation_idx",
                "acme_job_claim_idx",
                "acme_job_leased_idx",
                "acme_job_dedup_idx",
                "acme_job_listing_idx",
                "acme_job_blocked_idx",
                "acme_job_closed_idx",
                "acme_chain_dedup_key_idx",
                "acme_job_unsuccessful_idx",
                "acme_job_blocker_pkey",
                "acme_job_blocker_chain_idx",
                "acme_job_limit_pkey",
                "acme_migration_pkey",
            }
        finally:
            await conn.close()
    finally:
        await adapter.close()
        await drop_namespace(ns)


async def test_migrate_twice_is_a_no_op(namespace: Namespace) -> None:
    adapter = await make_adapter("asyncpg", namespace)
    try:
        first = await adapter.migrate()
        second = await adapter.migrate()
        assert first.applied == [m.name for m in MIGRATIONS]
        assert second.applied == []
        assert second.skipped == [m.name for m in MIGRATIONS]
    finally:
        await adapter.close()


async def test_concurrent_migrations_apply_each_migration_once(namespace: Namespace) -> None:
    adapters = [await make_adapter("asyncpg", namespace) for _ in range(4)]
    try:
        results = await asyncio.gather(*(a.migrate() for a in adapters))
        applied = [name for r in results for name in r.applied]
        assert sorted(applied) == sorted(m.name for m in MIGRATIONS)
        conn = await asyncpg.connect(DSN)
        try:
            count = await conn.fetchval(
                f'SELECT count(*) FROM "{namespace.schema}"."queuert_migration"'
            )
        finally:
            await conn.close()
        assert count == len(MIGRATIONS)
    finally:
        for adapter in adapters:
            await adapter.close()


async def test_unknown_migrations_in_the_database_are_reported(namespace: Namespace) -> None:
    adapter = await make_adapter("asyncpg", namespace)
    try:
        await adapter.migrate()
        conn = await asyncpg.connect(DSN)
        try:
            await conn.execute(
                f'INSERT INTO "{namespace.schema}"."queuert_migration" (name) VALUES ($1)',
                "9999_from_the_future",
            )
        finally:
            await conn.close()
        result = await adapter.migrate()
        assert result.unrecognized == ["9999_from_the_future"]
        assert result.applied == []
    finally:
        await adapter.close()


async def test_two_installations_in_one_database_are_independent() -> None:
    a = Namespace(unique_schema(), "queuert_")
    b = Namespace(a.schema, "other_")
    first = await make_adapter("asyncpg", a)
    pool = first.provider.pool  # type: ignore[attr-defined]
    second = PgStateAdapter(AsyncpgProvider(pool), schema=b.schema, table_prefix=b.prefix)
    try:
        await first.migrate()
        await second.migrate()
        await first.create_jobs([NewJob(id=uuid7(), type_name="t", chain_type_name="t", input=1)])
        lease = {"t": timedelta(seconds=5)}
        assert (await second.claim_jobs(leases=lease, limit=5, worker_id="w")).jobs == []
        assert len((await first.claim_jobs(leases=lease, limit=5, worker_id="w")).jobs) == 1
    finally:
        await first.close()
        await drop_namespace(a)


async def test_upgrade_drops_the_listing_indexes_by_type_and_keeps_the_jobs(
    namespace: Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installation migrated before ``0003`` (which has the chain listing and the listing indexes by
    type) upgrades in place: the indexes go, its jobs stay, and the listings still find them."""
    import queuert_postgres.state as pg_state
    from queuert.state import ChainFilter, JobFilter

    async def dropped_indexes() -> set[str]:
        conn = await asyncpg.connect(DSN)
        try:
            rows = await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND indexname <> $2"
                " AND indexname LIKE '%listing%'",
                namespace.schema,
                f"{namespace.prefix}job_listing_idx",
            )
            return {r[0] for r in rows}
        finally:
            await conn.close()

    old = await make_adapter("asyncpg", namespace)
    monkeypatch.setattr(pg_state, "MIGRATIONS", MIGRATIONS[:2])
    ids = [uuid7() for _ in range(3)]
    try:
        assert (await old.migrate()).applied == [m.name for m in MIGRATIONS[:2]]
        # rows as that schema holds them (today's adapter writes columns added since)
        conn = await asyncpg.connect(DSN)
        try:
            for job_id, t in zip(ids, ["a", "b", "a"], strict=True):
                await conn.execute(
                    f"INSERT INTO {old.sql.names.job} (id, type_name, chain_id, chain_type_name, "
                    "chain_index, input, created_at, scheduled_at) "
                    "VALUES ($1::uuid, $2, $1::uuid, $2, 0, '1', clock_timestamp(), now())",
                    job_id,
                    t,
                )
        finally:
            await conn.close()
    finally:
        await old.close()
    p = namespace.prefix
    assert await dropped_indexes() == {
        f"{p}job_listing_type_idx",
        f"{p}chain_listing_type_idx",
        f"{p}chain_listing_idx",
    }

    monkeypatch.setattr(pg_state, "MIGRATIONS", MIGRATIONS)
    new = await make_adapter("asyncpg", namespace)
    try:
        result = await new.migrate()
        assert result.applied == [m.name for m in MIGRATIONS[2:]]
        assert await dropped_indexes() == set()
        page = await new.list_jobs(JobFilter(type_names=["a"]), order="asc")
        assert [j.id for j in page.items] == [ids[0], ids[2]]
        assert [j.priority for j in page.items] == [0, 0], "older jobs read as priority 0"
        chains = await new.list_chains(ChainFilter(type_names=["a"]), order="asc")
        assert [c.id for c in chains.items] == [ids[0], ids[2]]
    finally:
        await new.close()


async def test_queue_stats_read_only_the_partial_indexes_of_open_jobs(namespace: Namespace) -> None:
    """The plan of ``get_queue_stats`` on a table of mostly closed jobs: each branch scans one
    partial index over open jobs (claim, leased, blocked), never the table's closed history."""
    closed = {"outcome": "'completed'", "scheduled_at": "now()", "completed_at": "now()"}
    async with backlog(namespace, closed) as (adapter, conn):
        await adapter.create_jobs(
            [NewJob(id=uuid7(), type_name="t1", chain_type_name="t1", input=i) for i in range(3)]
        )
        await conn.execute(f"ANALYZE {adapter.sql.names.job}")
        for statement, args in (
            (adapter.sql.queue_stats, []),
            (adapter.sql.queue_stats_of, [["t1", "t2"]]),
        ):
            plan = await explain(conn, statement, *args)
            p = namespace.prefix
            for index in ("job_claim_idx", "job_leased_idx", "job_blocked_idx"):
                assert f"{p}{index}" in plan, plan
            assert "Seq Scan" not in plan, plan
        stats = await adapter.get_queue_stats()
        assert [(s.type_name, s.ready) for s in stats] == [("t1", 3)]


async def test_claim_walks_the_claim_index_in_priority_order(namespace: Namespace) -> None:
    """A claim reads each type's ready jobs from ``job_claim_idx`` in its order (no sort of the
    backlog) and takes the highest priority first."""
    async with backlog(namespace, {"scheduled_at": "now()", "priority": "n % 7"}) as (
        adapter,
        conn,
    ):
        plan = await explain(conn, adapter.sql.claim, ["t1"], [30.0], 10, "w")
        assert f"{namespace.prefix}job_claim_idx" in plan, plan
        assert "Seq Scan" not in plan, plan
        claimed = await adapter.claim_jobs(
            leases={"t1": timedelta(seconds=30)}, limit=5, worker_id="w"
        )
        assert [j.priority for j in claimed.jobs] == [6] * 5


READY_PREDICATE = "((outcome IS NULL) AND (open_blockers = 0) AND (leased_until IS NULL))"


async def ready_indexes(ns: Namespace) -> dict[str, list[str]]:
    """Per table of the job table (the table, or the partitioned parent and each partition), the
    definitions of the indexes over exactly the ready jobs."""
    conn = await asyncpg.connect(DSN)
    try:
        rows = await conn.fetch(
            "SELECT t.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class x ON x.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE n.nspname = $1 AND t.relname LIKE $2 "
            "AND pg_get_expr(i.indpred, i.indrelid) = "
            "$3 ORDER BY 1, 2",
            ns.schema,
            f"{ns.prefix}job%",
            READY_PREDICATE,
        )
    finally:
        await conn.close()
    found: dict[str, list[str]] = {}
    for table, index in rows:
        found.setdefault(table, []).append(index)
    return found


def is_claim_index(index: str) -> bool:
    """Whether the definition ``index`` (``pg_get_indexdef``) has the claim index's columns (a
    partition's copy of an index has a name of its own)."""
    return index.endswith("(type_name, priority DESC, scheduled_at, id) WHERE " + READY_PREDICATE)


@pytest.mark.parametrize("partitioned", [False, True], ids=["plain", "partitioned"])
async def test_upgrade_keeps_one_ready_index_and_the_ready_jobs(
    namespace: Namespace, monkeypatch: pytest.MonkeyPatch, partitioned: bool
) -> None:
    """An installation migrated up to ``0008`` has two indexes over the ready jobs (on every
    partition too); ``0009`` leaves only the claim index, and the ready jobs stay claimable and
    counted. A fresh installation has only the claim index."""
    import queuert_postgres.state as pg_state

    before = MIGRATIONS[:8]
    assert before[-1].name == "0008_concurrency_limits"
    monkeypatch.setattr(pg_state, "MIGRATIONS", before)
    old = await make_adapter("asyncpg", namespace, partitioned=partitioned)
    news = [
        NewJob(id=uuid7(), type_name="t", chain_type_name="t", input=i, priority=i % 3)
        for i in range(5)
    ]
    try:
        applied = (await old.migrate()).applied
        assert applied[: len(before)] == [m.name for m in before]
        await old.create_jobs(news)
    finally:
        await old.close()
    found = await ready_indexes(namespace)
    assert found and all(len(indexes) == 2 for indexes in found.values()), found
    if partitioned:
        assert len(found) > 1, found

    monkeypatch.setattr(pg_state, "MIGRATIONS", MIGRATIONS[:9])
    new = await make_adapter("asyncpg", namespace, partitioned=partitioned)
    try:
        assert (await new.migrate()).applied == ["0009_one_ready_index"]
        after = await ready_indexes(namespace)
        assert after.keys() == found.keys()
        for table, indexes in after.items():
            assert len(indexes) == 1 and is_claim_index(indexes[0]), (table, indexes)
        (parent,) = after[f"{namespace.prefix}job"]
        assert f"INDEX {namespace.prefix}job_claim_idx ON" in parent, parent
        assert await new.next_due(["t"]) == timedelta(0)
        (stats,) = await new.get_queue_stats(["t"])
        assert stats.ready == 5
        claimed = await new.claim_jobs(leases={"t": timedelta(seconds=30)}, limit=5, worker_id="w")
        assert sorted(j.priority for j in claimed.jobs) == [0, 0, 1, 1, 2]
    finally:
        await new.close()


@pytest.mark.parametrize("partitioned", [False, True], ids=["plain", "partitioned"])
async def test_fresh_installation_has_only_the_claim_index(
    namespace: Namespace, partitioned: bool
) -> None:
    adapter = await make_adapter("asyncpg", namespace, partitioned=partitioned)
    try:
        await adapter.migrate()
    finally:
        await adapter.close()
    found = await ready_indexes(namespace)
    assert found, found
    for table, indexes in found.items():
        assert len(indexes) == 1 and is_claim_index(indexes[0]), (table, indexes)


async def chain_position_indexes(ns: Namespace) -> dict[str, list[str]]:
    """Per table of the job table's hierarchy (the parent and each partition), the definitions of
    its indexes on ``(chain_id, chain_index)``."""
    conn = await asyncpg.connect(DSN)
    try:
        rows = await conn.fetch(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = $1 "
            "AND tablename LIKE $2 AND indexdef LIKE '%(chain_id, chain_index)%'",
            ns.schema,
            f"{ns.prefix}job%",
        )
    finally:
        await conn.close()
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row[0], []).append(row[1])
    return found


@pytest.mark.parametrize("partitioned", [False, True], ids=["plain", "partitioned"])
async def test_upgrade_keeps_only_continuations_in_the_chain_position_index(
    namespace: Namespace, monkeypatch: pytest.MonkeyPatch, partitioned: bool
) -> None:
    """An installation migrated up to ``0009`` with a one-job chain and a chain of three jobs:
    ``0010`` replaces the chain position index (on every partition too) by a unique one over the
    continuations only, and every lookup by chain still finds the first jobs and the
    continuations: tails, the chain's jobs in both orders, listings by chain, an idempotent
    continuation, a taken position, and the deletion of both chains."""
    import queuert_postgres.state as pg_state

    before = MIGRATIONS[:9]
    assert before[-1].name == "0009_one_ready_index"
    monkeypatch.setattr(pg_state, "MIGRATIONS", before)
    single, first = uuid7(), uuid7()
    second, third = uuid7(), uuid7()
    old = await make_adapter("asyncpg", namespace, partitioned=partitioned)
    try:
        await old.migrate()
        await old.create_jobs(
            [
                NewJob(id=single, type_name="t", chain_type_name="t", input=0),
                NewJob(id=first, type_name="t", chain_type_name="c", input=1),
            ]
        )
        await old.create_jobs(
            [
                NewJob(
                    id=second,
                    type_name="u",
                    chain_type_name="c",
                    input=None,
                    chain_id=first,
                    chain_index=1,
                )
            ]
        )
    finally:
        await old.close()
    found = await chain_position_indexes(namespace)
    assert found and all(
        len(d) == 1 and "UNIQUE" in d[0] and "WHERE" not in d[0] for d in found.values()
    ), found

    monkeypatch.setattr(pg_state, "MIGRATIONS", MIGRATIONS)
    new = await make_adapter("asyncpg", namespace, partitioned=partitioned)
    try:
        assert (await new.migrate()).applied == ["0010_chain_continuation_index"]
        after = await chain_position_indexes(namespace)
        assert after.keys() == found.keys()
        for table, definitions in after.items():
            assert len(definitions) == 1, (table, definitions)
            assert "UNIQUE" in definitions[0], definitions
            assert definitions[0].endswith("WHERE (chain_index > 0)"), definitions
        (parent,) = after[f"{namespace.prefix}job"]
        assert f"INDEX {namespace.prefix}job_chain_continuation_idx ON" in parent, parent

        created = await new.create_jobs(
            [
                NewJob(
                    id=third,
                    type_name="v",
                    chain_type_name="c",
                    input=None,
                    chain_id=first,
                    chain_index=2,
                )
            ]
        )
        assert [(c.job.id, c.deduplicated) for c in created] == [(third, False)]
        again = await new.create_jobs(
            [
                NewJob(
                    id=uuid7(),
                    type_name="v",
                    chain_type_name="c",
                    input=None,
                    chain_id=first,
                    chain_index=2,
                )
            ]
        )
        assert [(c.job.id, c.deduplicated) for c in again] == [(third, True)]

        one = await new.get_chain(single)
        assert one is not None and one.root.id == one.tail.id == single
        three = await new.get_chain(first, lock=True)
        assert three is not None and (three.root.id, three.tail.id) == (first, third)
        asc = await new.list_chain_jobs(first)
        assert [j.id for j in asc.items] == [first, second, third]
        desc = await new.list_chain_jobs(first, order="desc", limit=2)
        assert [j.id for j in desc.items] == [third, second]
        assert desc.next_cursor is not None
        rest = await new.list_chain_jobs(first, order="desc", cursor=desc.next_cursor)
        assert [j.id for j in rest.items] == [first]
        assert [j.id for j in (await new.list_chain_jobs(single)).items] == [single]
        # a continuation's id is not a chain id
        listed = await new.list_jobs(JobFilter(chain_ids=[single, second]), order="asc")
        assert [j.id for j in listed.items] == [single]
        listed = await new.list_jobs(JobFilter(chain_ids=[first]), order="asc")
        assert sorted(j.id for j in listed.items) == sorted([first, second, third])

        conn = await asyncpg.connect(DSN)
        try:
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute(
                    f"INSERT INTO {new.names.job} (id, type_name, chain_id, chain_type_name, "
                    "chain_index, created_at, scheduled_at) "
                    "VALUES ($1::uuid, 'v', $2::uuid, 'c', 2, now(), now())",
                    uuid7(),
                    first,
                )
        finally:
            await conn.close()

        deleted = await new.delete_chains([single, first])
        assert not deleted.references
        assert sorted(c.root.id for c in deleted.deleted) == sorted([single, first])
        assert [j.id for j in (await new.list_chain_jobs(first)).items] == []
        assert await new.get_chain(single) is None
    finally:
        await new.close()
