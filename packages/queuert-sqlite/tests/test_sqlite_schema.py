"""Schema, migrations, table prefixes, connection settings and query plans."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from queuert.errors import InvalidIdentifierError
from queuert.state import ChainFilter, JobFilter
from queuert_sqlite import MIGRATIONS, SqliteOptions, SqliteSetupError, SqliteStateAdapter
from queuert_sqlite._connection import setup_connection
from queuert_sqlite._driver import load_driver
from queuert_sqlite._schema import Migration
from queuert_sqlite._sql import Statements
from sqlite_helpers import DBAPI, new_job, run_processes


@pytest.mark.parametrize(
    "prefix",
    ["bad-prefix", "1abc", "a b", "x;DROP TABLE y", "prefix.", "é_", "sqlite_", "SQLite_x"],
)
async def test_invalid_prefix_is_refused(db_path: Path, prefix: str) -> None:
    with pytest.raises(InvalidIdentifierError) as caught:
        await SqliteStateAdapter.open(db_path, table_prefix=prefix)
    assert caught.value.what == "table prefix"
    assert not await asyncio.to_thread(db_path.exists), "nothing is opened for an invalid prefix"


@pytest.mark.parametrize("prefix", ["", "queuert_", "App_2", "_x"])
async def test_valid_prefixes_create_prefixed_tables(db_path: Path, prefix: str) -> None:
    adapter = await SqliteStateAdapter.open(db_path, table_prefix=prefix)
    try:
        await adapter.migrate()
    finally:
        await adapter.close()
    with closing(sqlite3.connect(db_path)) as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {f"{prefix}job", f"{prefix}job_blocker", f"{prefix}migration"} <= tables


async def test_prefixes_keep_stores_apart(db_path: Path) -> None:
    first = await SqliteStateAdapter.open(db_path, table_prefix="one_")
    second = await SqliteStateAdapter.open(db_path, table_prefix="two_")
    try:
        await first.migrate()
        await second.migrate()
        (created,) = await first.create_jobs([new_job("first")])
        assert await second.get_job(created.job.id) is None
        assert (await second.list_jobs(JobFilter())).items == []
        assert [j.id for j in (await first.list_jobs(JobFilter())).items] == [created.job.id]
    finally:
        await first.close()
        await second.close()


async def test_migrate_is_idempotent(db_path: Path, table_prefix: str) -> None:
    adapter = await SqliteStateAdapter.open(db_path, table_prefix=table_prefix)
    try:
        first = await adapter.migrate()
        assert first.applied == [m.name for m in MIGRATIONS]
        assert first.skipped == [] and first.unrecognized == []
        again = await adapter.migrate()
        assert again.applied == []
        assert again.skipped == [m.name for m in MIGRATIONS]
    finally:
        await adapter.close()
    with closing(sqlite3.connect(db_path)) as raw:
        rows = raw.execute(f"SELECT name, applied_at FROM {table_prefix}migration").fetchall()
    assert [r[0] for r in rows] == [m.name for m in MIGRATIONS]


async def test_migrate_reports_unknown_migrations(db_path: Path) -> None:
    adapter = await SqliteStateAdapter.open(db_path)
    try:
        await adapter.migrate()
        await adapter.provider.run_write(
            lambda raw: raw.execute(
                "INSERT INTO queuert_migration (name, applied_at) VALUES ('29990101_future', 'x')"
            )
        )
        result = await adapter.migrate()
        assert result.unrecognized == ["29990101_future"]
    finally:
        await adapter.close()


def _ready_indexes(raw: sqlite3.Connection, prefix: str) -> list[str]:
    """The indexes of the job table whose rows are exactly the ready jobs."""
    rows = raw.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
        (f"{prefix}job",),
    ).fetchall()
    return sorted(name for name, sql in rows if sql and "blocked = 0" in sql)


async def test_one_index_over_the_ready_jobs(db_path: Path, table_prefix: str) -> None:
    adapter = await SqliteStateAdapter.open(db_path, table_prefix=table_prefix)
    try:
        await adapter.migrate()
        indexes = await adapter.provider.run_read(lambda raw: _ready_indexes(raw, table_prefix))
    finally:
        await adapter.close()
    assert indexes == [f"{table_prefix}job_claim_idx"]


async def test_an_upgrade_drops_the_ready_index(db_path: Path, table_prefix: str) -> None:
    from queuert_sqlite._schema import apply_migrations

    assert MIGRATIONS[-1].name.endswith("_one_ready_index")
    adapter = await SqliteStateAdapter.open(db_path, table_prefix=table_prefix)
    try:
        await adapter.provider.run_write(
            lambda raw: apply_migrations(raw, table_prefix, MIGRATIONS[:-1])
        )
        before = await adapter.provider.run_read(lambda raw: _ready_indexes(raw, table_prefix))
        assert before == [f"{table_prefix}job_claim_idx", f"{table_prefix}job_ready_idx"]
        await adapter.create_jobs([new_job(i) for i in range(3)])
        result = await adapter.migrate()
        assert result.applied == [MIGRATIONS[-1].name]
        after = await adapter.provider.run_read(lambda raw: _ready_indexes(raw, table_prefix))
        assert after == [f"{table_prefix}job_claim_idx"]
        assert await adapter.next_due([new_job(0).type_name]) == timedelta(0)
    finally:
        await adapter.close()


async def test_a_failing_migration_leaves_nothing_behind(db_path: Path) -> None:
    from queuert_sqlite._schema import apply_migrations

    broken = (
        *MIGRATIONS,
        Migration("29990101_broken", lambda p: [f"CREATE TABLE {p}extra (x)", "NOT SQL"]),
    )
    adapter = await SqliteStateAdapter.open(db_path)
    try:
        await adapter.migrate()
        with pytest.raises(DBAPI.OperationalError):
            await adapter.provider.run_write(lambda raw: apply_migrations(raw, "queuert_", broken))
        names = await adapter.provider.run_read(
            lambda raw: [r[0] for r in raw.execute("SELECT name FROM sqlite_master")]
        )
        assert "queuert_extra" not in names
    finally:
        await adapter.close()


async def test_concurrent_migrations_from_several_processes(db_path: Path) -> None:
    results = await run_processes([["migrate", str(db_path), "app_"] for _ in range(4)])
    applied = [name for r in results for name in r["applied"]]
    assert applied == [m.name for m in MIGRATIONS], "each migration applied exactly once"
    assert sum(1 for r in results if r["skipped"]) == 3
    adapter = await SqliteStateAdapter.open(db_path, table_prefix="app_")
    try:
        assert (await adapter.migrate()).applied == []
        await adapter.create_jobs([new_job()])
    finally:
        await adapter.close()


async def test_connection_settings(adapter: SqliteStateAdapter) -> None:
    provider = adapter.provider
    writer = provider._writer

    def pragmas(raw: sqlite3.Connection) -> dict[str, object]:
        return {
            name: raw.execute(f"PRAGMA {name}").fetchone()[0]
            for name in (
                "journal_mode",
                "foreign_keys",
                "busy_timeout",
                "query_only",
                "synchronous",
            )
        }

    on_writer = await writer.call(lambda: pragmas(writer.raw))
    assert on_writer == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 0,  # the provider polls for the write lock itself (fairness)
        "query_only": 0,
        "synchronous": 1,
    }
    assert provider.journal_mode == "WAL"
    assert len(provider._readers) == 2
    for reader in provider._readers:
        on_reader = await reader.call(lambda r=reader: pragmas(r.raw))  # type: ignore[misc]
        assert on_reader["foreign_keys"] == 1
        assert on_reader["query_only"] == 1
        assert on_reader["journal_mode"] == "wal"
        assert on_reader["busy_timeout"] == 5000


async def test_readers_refuse_writes(adapter: SqliteStateAdapter) -> None:
    with pytest.raises(DBAPI.OperationalError, match=r"readonly|read-only|query_only"):
        await adapter.provider.run_read(
            lambda raw: raw.execute("DELETE FROM " + adapter.table_prefix + "job")
        )


async def test_foreign_keys_are_enforced(adapter: SqliteStateAdapter) -> None:
    p = adapter.table_prefix
    with pytest.raises(DBAPI.IntegrityError, match="FOREIGN KEY"):
        await adapter.provider.run_write(
            lambda raw: raw.execute(
                f"INSERT INTO {p}job_blocker (job_id, slot, blocked_by_chain_id) "
                "VALUES ('nope', 0, 'nope')"
            )
        )


def test_startup_refuses_a_connection_without_foreign_keys(tmp_path: Path) -> None:
    raw = sqlite3.connect(tmp_path / "fk.db", isolation_level=None)
    try:
        # an authorizer that turns "PRAGMA foreign_keys = ON" into a no-op stands in for a SQLite
        # build where the pragma has no effect
        def authorizer(action: int, arg1: str | None, arg2: str | None, *_: object) -> int:
            if action == sqlite3.SQLITE_PRAGMA and arg1 == "foreign_keys" and arg2 is not None:
                return sqlite3.SQLITE_IGNORE
            return sqlite3.SQLITE_OK

        raw.set_authorizer(authorizer)
        with pytest.raises(SqliteSetupError, match="foreign"):
            setup_connection(raw, SqliteOptions())
    finally:
        raw.close()


async def test_timestamps_are_utc_with_microseconds(adapter: SqliteStateAdapter) -> None:
    (created,) = await adapter.create_jobs([new_job()])
    job = await adapter.get_job(created.job.id)
    assert job is not None
    assert job.created_at == created.job.created_at
    assert job.created_at.tzinfo is not None
    assert job.created_at.utcoffset() == timedelta(0)
    p = adapter.table_prefix
    text = await adapter.provider.run_read(
        lambda raw: raw.execute(f"SELECT created_at FROM {p}job").fetchone()[0]
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", text)
    # SQLite's own date functions read the stored form
    seconds = await adapter.provider.run_read(
        lambda raw: (
            raw.execute("SELECT unixepoch(?)", (text,)).fetchone()[0]
            if DBAPI.sqlite_version_info >= (3, 38)
            else raw.execute("SELECT CAST(strftime('%s', ?) AS INTEGER)", (text,)).fetchone()[0]
        )
    )
    assert seconds == int(job.created_at.timestamp())


_HOT = [
    ("next_due", "job_claim_idx"),
    ("any_ready", "job_claim_idx"),
    ("expired_leases", "job_lease_idx"),
    ("dedup_lookup", "job_dedup_idx"),
    ("unblock", "job_blocker_chain_idx"),
    ("blocker_trace_contexts", "job_blocker_chain_idx"),
    ("chain_has_dependents", "job_blocker_chain_idx"),
    ("any_chain_has_dependents", "job_blocker_chain_idx"),
    ("complete_many", "@primary key"),
    ("after_close", "job_chain_index_idx"),
    ("get_chain", "job_chain_index_idx"),
]


@pytest.mark.parametrize(("statement", "index"), _HOT)
async def test_hot_paths_use_their_index(
    adapter: SqliteStateAdapter, statement: str, index: str
) -> None:
    sql = getattr(Statements(adapter.table_prefix), statement)
    plan = await _plan(adapter, sql)
    if index == "@primary key":
        index = f"sqlite_autoindex_{adapter.table_prefix}job_1 (id=?)"
    else:
        index = f"{adapter.table_prefix}{index}"
    assert index in plan, plan
    _assert_no_job_scan(plan)
    if statement in ("next_due", "any_ready"):
        assert "TEMP B-TREE" not in plan, "one probe per type and priority, no sort"


@pytest.mark.parametrize("types", [1, 3])
async def test_claim_walks_the_claim_index(adapter: SqliteStateAdapter, types: int) -> None:
    plan = await _plan(adapter, Statements(adapter.table_prefix).claim(types))
    assert plan.count(f"{adapter.table_prefix}job_claim_idx") == types, plan
    assert "TEMP B-TREE" not in plan.split("UNION ALL")[0], "each type's scan needs no sort"
    _assert_no_job_scan(plan)


async def test_listing_walks_the_creation_index(adapter: SqliteStateAdapter) -> None:
    # fill the table so the planner prefers the index over sorting
    await adapter.create_jobs([new_job(i) for i in range(200)])
    await adapter.provider.run_write(lambda raw: raw.execute("ANALYZE"))
    seen: list[str] = []
    writer = adapter.provider._writer
    await writer.call(lambda: writer.raw.set_trace_callback(seen.append))
    async with adapter.transaction() as tx:
        await adapter.list_jobs(JobFilter(), limit=10, tx=tx)
        await adapter.list_chains(ChainFilter(), limit=10, tx=tx)
    queries = [s for s in seen if s.startswith("SELECT") and "LIMIT" in s]
    assert len(queries) == 2
    jobs_plan = await _plan(adapter, queries[0].replace(":lim", "11"))
    chains_plan = await _plan(adapter, queries[1].replace(":lim", "11"))
    assert f"{adapter.table_prefix}job_created_idx" in jobs_plan, jobs_plan
    assert f"{adapter.table_prefix}chain_created_idx" in chains_plan, chains_plan
    assert "TEMP B-TREE" not in jobs_plan and "TEMP B-TREE" not in chains_plan


@pytest.mark.parametrize("statement", ["queue_stats", "queue_stats_of"])
async def test_queue_stats_read_only_the_indexes_of_open_jobs(
    adapter: SqliteStateAdapter, statement: str
) -> None:
    plan = await _plan(adapter, getattr(Statements(adapter.table_prefix), statement))
    p = adapter.table_prefix
    partial = [f"{p}job_claim_idx", f"{p}job_lease_idx", f"{p}job_blocked_idx"]
    for index in partial:
        assert index in plan, plan
    for line in plan.splitlines():
        # a scan of a partial index over open jobs reads no closed job
        if line.strip().startswith("SCAN j "):
            assert any(line.strip().endswith(f"INDEX {index}") for index in partial), plan


async def _plan(adapter: SqliteStateAdapter, sql: str) -> str:
    count = max([int(n) for n in re.findall(r"\?(\d+)", sql)] or [0])

    def explain(raw: sqlite3.Connection) -> str:
        rows = raw.execute("EXPLAIN QUERY PLAN " + sql, [None] * count).fetchall()
        return "\n".join(str(r[3]) for r in rows)

    return await adapter.provider.run_read(explain)


def _assert_no_job_scan(plan: str) -> None:
    for line in plan.splitlines():
        line = line.strip()
        if line.startswith("SCAN") and "VIRTUAL TABLE" not in line and "subquery" not in line:
            if "CONSTANT ROW" in line or line == "SCAN q":  # q: the rows of a CTE (prio)
                continue
            raise AssertionError(f"full scan in plan: {line}\n{plan}")


def test_drivers_are_checked() -> None:
    with pytest.raises(SqliteSetupError, match="not installed"):
        load_driver("no_such_sqlite_driver")
    with pytest.raises(SqliteSetupError, match="not a SQLite DB-API module"):
        load_driver("json")
    assert load_driver("sqlite3") is sqlite3


async def test_the_driver_in_use_is_reported(adapter: SqliteStateAdapter) -> None:
    assert adapter.provider.dbapi is DBAPI
    version = await adapter.provider.run_read(
        lambda raw: raw.execute("SELECT sqlite_version()").fetchone()[0]
    )
    assert version == adapter.provider.sqlite_version == DBAPI.sqlite_version
