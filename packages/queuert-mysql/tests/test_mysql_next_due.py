"""``next_due`` probes the claim index (ready type, priority, due time) one distinct priority at a
time: it skips the rows other transactions hold locked, and each probe is one range read of the
claim index. That it finds the earliest due job whatever the priorities is the conformance suite's
property (``TestNextDueProperty``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import aiomysql
from mysql_helpers import connect_args, drop_prefix, make_adapter, sql, unique_prefix
from queuert.ids import uuid7
from queuert.schedule import Schedule
from queuert.state import NewJob
from queuert_mysql._sql import ABOVE_PRIORITIES, next_due_round

SLACK = timedelta(seconds=20)
"""Due times differ by whole minutes; this covers the time between the client's clock and the
statement's."""


def _new_jobs(type_name: str, base: datetime, jobs: list[tuple[int, int]]) -> list[NewJob]:
    return [
        NewJob(
            id=uuid7(),
            type_name=type_name,
            chain_type_name=type_name,
            input=None,
            schedule=Schedule(at=base + timedelta(minutes=minutes)),
            priority=priority,
        )
        for priority, minutes in jobs
    ]


async def test_a_job_locked_by_another_transaction_is_skipped() -> None:
    """The earliest job, held locked by another transaction (a claim under way), is not the
    answer; the next one, of another priority, is (once the lock is gone, the earliest again)."""
    prefix = unique_prefix()
    adapter = await make_adapter(prefix)
    conn = await aiomysql.connect(**connect_args())
    try:
        await adapter.migrate()
        base = datetime.now(timezone.utc) + timedelta(hours=1)
        news = _new_jobs("t", base, [(5, 0), (9, 30), (0, 20)])
        await adapter.create_jobs(news)
        async with conn.cursor() as cur:
            await conn.begin()
            await cur.execute(
                f"SELECT 1 FROM {adapter.sql.names.job} WHERE id = %s FOR UPDATE", (news[0].id,)
            )
            due = await adapter.next_due(["t"])
            await conn.rollback()
        assert due is None or due > timedelta(minutes=60 + 10), due
        due = await adapter.next_due(["t"])
        assert due is not None and abs(due - timedelta(hours=1)) <= SLACK, due
    finally:
        conn.close()
        await adapter.close()
        await drop_prefix(prefix)


async def test_each_probe_is_one_range_read_of_the_claim_index() -> None:
    """On a backlog of ready and scheduled jobs of several types and priorities, a round of
    ``next_due`` reads the claim index in its order (a range, no sort, no other index)."""
    prefix = unique_prefix()
    adapter = await make_adapter(prefix)
    try:
        await adapter.migrate()
        job = adapter.sql.names.job
        rows = [(str(uuid.uuid4()), f"t{n % 5}", (n % 100 - 50) * 60, n % 4) for n in range(5000)]
        await sql(
            f"INSERT INTO {job} (id, type_name, chain_id, chain_type_name, chain_index, input, "
            "created_at, scheduled_at, priority) VALUES "
            + ", ".join(
                ["(%s, %s, %s, %s, 0, 'null', UTC_TIMESTAMP(6), "
                 "UTC_TIMESTAMP(6) + INTERVAL %s SECOND, %s)"] * len(rows)
            ),
            *[a for u, t, s, p in rows for a in (u, t, u, t, s, p)],
        )  # fmt: skip
        await sql(f"ANALYZE TABLE {job}")
        statement = adapter.sql.names.render(next_due_round(2))
        plan = await sql("EXPLAIN " + statement, "t1", ABOVE_PRIORITIES, "t2", 2)
        probes = [row for row in plan if row[2] == "j"]
        assert len(probes) == 2, plan
        for row in probes:
            assert row[3] == "range", plan
            assert row[5] == f"{prefix}job_claim_idx", plan
            assert "filesort" not in str(row[-1]), plan
        assert await adapter.next_due(["t1", "t2"]) == timedelta(0)
        await sql(f"UPDATE {job} SET scheduled_at = UTC_TIMESTAMP(6) + INTERVAL priority HOUR")
        due = await adapter.next_due(["t1", "t2", "t3"])
        assert due is not None and timedelta(minutes=-1) < due <= timedelta(0) + SLACK
    finally:
        await adapter.close()
        await drop_prefix(prefix)
