"""Migrations, identifiers, collations and timestamps on the real server."""

from __future__ import annotations

import asyncio
from datetime import timedelta, timezone

import pytest
from mysql_helpers import connect_args, drop_prefix, make_adapter, sql, unique_prefix
from queuert.errors import InvalidIdentifierError
from queuert.ids import uuid7
from queuert.schedule import Deduplication
from queuert.state import NewJob
from queuert_mysql import MIGRATIONS, AiomysqlProvider, MysqlStateAdapter, from_url


async def tables_with(prefix: str) -> list[str]:
    rows = await sql(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name LIKE %s",
        prefix.replace("_", "\\_") + "%",
    )
    return sorted(row[0] for row in rows)


async def test_concurrent_migrations_apply_each_migration_once() -> None:
    prefix = unique_prefix()
    adapters = [await make_adapter(prefix) for _ in range(4)]
    try:
        results = await asyncio.gather(*(a.migrate() for a in adapters))
        applied = [name for r in results for name in r.applied]
        assert sorted(applied) == sorted(m.name for m in MIGRATIONS)
        recorded = await sql(f"SELECT name FROM `{prefix}migration`")
        assert sorted(row[0] for row in recorded) == sorted(m.name for m in MIGRATIONS)
        again = await adapters[0].migrate()
        assert again.applied == [] and again.skipped == [m.name for m in MIGRATIONS]
    finally:
        for adapter in adapters:
            await adapter.close()
        await drop_prefix(prefix)


@pytest.mark.parametrize("prefix", ["bad-prefix", "x; DROP TABLE t", "é_", "a" * 41, "1abc"])
async def test_invalid_table_prefix_is_refused_before_anything_is_written(prefix: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        MysqlStateAdapter.connect(table_prefix=prefix, **connect_args())
    with pytest.raises(InvalidIdentifierError):
        from_url(f"mysql://root@127.0.0.1/test?table_prefix={prefix}")
    provider = await AiomysqlProvider.connect(**connect_args())
    try:
        with pytest.raises(InvalidIdentifierError):
            MysqlStateAdapter(provider, table_prefix=prefix)
        with pytest.raises(InvalidIdentifierError):
            MysqlStateAdapter(provider, database="no-such`db")
    finally:
        await provider.close()
    assert await tables_with(prefix[:5]) == [] or not prefix.isidentifier()


async def test_columns_compare_bytes_not_collation_equivalents() -> None:
    """Ids, type names and deduplication keys are compared byte by byte: case and accent
    variants are different values (the server's default collations would match them)."""
    prefix = unique_prefix()
    adapter = await make_adapter(prefix)
    try:
        await adapter.migrate()
        keys = ["key", "Key", "KEY", "kéy", "ke\u0301y", "key "]
        created = await adapter.create_jobs(
            [
                NewJob(
                    id=uuid7(),
                    type_name="t",
                    chain_type_name="t",
                    input=None,
                    deduplication=Deduplication(key=key),
                )
                for key in keys
            ]
        )
        assert [c.deduplicated for c in created] == [False] * len(keys)
        again = await adapter.create_jobs(
            [
                NewJob(
                    id=uuid7(),
                    type_name="t",
                    chain_type_name="t",
                    input=None,
                    deduplication=Deduplication(key=key),
                )
                for key in keys
            ]
        )
        assert [c.job.id for c in again] == [c.job.id for c in created]
        assert all(c.deduplicated for c in again)
        job_id = created[0].job.id
        assert await adapter.get_job(job_id.upper()) is None
        assert await adapter.get_job(job_id) is not None
        for name in ("Mail", "mail", "mäil"):
            await adapter.create_jobs(
                [NewJob(id=uuid7(), type_name=name, chain_type_name=name, input=name)]
            )
        claimed = await adapter.claim_jobs(
            leases={"mail": timedelta(seconds=30)}, limit=10, worker_id="w"
        )
        assert [job.input for job in claimed.jobs] == ["mail"]
    finally:
        await adapter.close()
        await drop_prefix(prefix)


async def test_timestamps_are_the_servers_utc_clock_with_microseconds() -> None:
    prefix = unique_prefix()
    adapter = await make_adapter(prefix)
    try:
        await adapter.migrate()
        ((before,),) = await sql("SELECT UTC_TIMESTAMP(6)")
        (created,) = await adapter.create_jobs(
            [NewJob(id=uuid7(), type_name="t", chain_type_name="t", input={"n": 10**18})]
        )
        ((after,),) = await sql("SELECT UTC_TIMESTAMP(6)")
        job = await adapter.get_job(created.job.id)
        assert job is not None
        assert job.created_at.tzinfo is timezone.utc
        assert before.replace(tzinfo=timezone.utc) <= job.created_at
        assert job.created_at <= after.replace(tzinfo=timezone.utc)
        assert job.created_at == created.job.created_at  # microseconds kept
        assert job.input == {"n": 10**18}
        ((column_type,),) = await sql(
            "SELECT column_type FROM information_schema.columns WHERE table_schema = DATABASE() "
            "AND table_name = %s AND column_name = 'created_at'",
            f"{prefix}job",
        )
        assert column_type == "datetime(6)"
    finally:
        await adapter.close()
        await drop_prefix(prefix)


async def test_hot_paths_use_their_indexes() -> None:
    """The claim walks the claim index and the reaper the leased index (EXPLAIN on a table with
    closed history)."""
    prefix = unique_prefix()
    adapter = await make_adapter(prefix)
    try:
        await adapter.migrate()
        plan = await sql(
            f"EXPLAIN SELECT id FROM `{prefix}job` j WHERE j.ready_type = 't' "
            "AND j.scheduled_at <= UTC_TIMESTAMP(6) "
            "ORDER BY j.priority DESC, j.scheduled_at, j.id LIMIT 11"
        )
        assert any(f"{prefix}job_claim_idx" in str(row) for row in plan), plan
        plan = await sql(
            f"EXPLAIN SELECT id FROM `{prefix}job` j WHERE j.leased_type = 't' "
            "AND j.leased_until <= UTC_TIMESTAMP(6) ORDER BY j.leased_until, j.id LIMIT 11"
        )
        assert any(f"{prefix}job_leased_idx" in str(row) for row in plan), plan
    finally:
        await adapter.close()
        await drop_prefix(prefix)


async def ready_indexes(prefix: str) -> list[str]:
    """The indexes of the job table that lead with ``ready_type`` (their rows: the ready jobs)."""
    rows = await sql(
        "SELECT index_name FROM information_schema.statistics WHERE table_schema = DATABASE() "
        "AND table_name = %s AND column_name = 'ready_type' AND seq_in_index = 1",
        f"{prefix}job",
    )
    return sorted(row[0] for row in rows)


async def test_one_index_over_the_ready_jobs_fresh_and_upgraded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fresh installation has only the claim index over the ready jobs; an installation at the
    previous migration has both, and the upgrade drops the ready index, keeping its jobs due."""
    fresh, upgraded = unique_prefix(), unique_prefix()
    adapter = await make_adapter(fresh)
    try:
        await adapter.migrate()
        assert await ready_indexes(fresh) == [f"{fresh}job_claim_idx"]
    finally:
        await adapter.close()
        await drop_prefix(fresh)
    assert MIGRATIONS[-1].name == "0006_one_ready_index"
    adapter = await make_adapter(upgraded)
    try:
        monkeypatch.setattr("queuert_mysql.state.MIGRATIONS", MIGRATIONS[:-1])
        await adapter.migrate()
        assert await ready_indexes(upgraded) == [
            f"{upgraded}job_claim_idx",
            f"{upgraded}job_ready_idx",
        ]
        await adapter.create_jobs(
            [NewJob(id=uuid7(), type_name="t", chain_type_name="t", input=None, priority=p)
             for p in (0, 7)]
        )  # fmt: skip
        monkeypatch.undo()
        result = await adapter.migrate()
        assert result.applied == ["0006_one_ready_index"]
        assert await ready_indexes(upgraded) == [f"{upgraded}job_claim_idx"]
        assert await adapter.next_due(["t"]) == timedelta(0)
    finally:
        await adapter.close()
        await drop_prefix(upgraded)
