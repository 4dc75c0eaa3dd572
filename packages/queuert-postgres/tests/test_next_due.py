"""``next_due`` reads the claim index (type, priority, due time) one distinct priority at a time:
whatever the rows other transactions hold locked, it returns the earliest due time of the unlocked
ready jobs, in both layouts, and its plan reads only the claim index. (That it finds the earliest
due job whatever the priorities, without locks, is the conformance suite's ``TestNextDueProperty``;
the property here adds the locks.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_helpers import (
    DSN,
    Namespace,
    backlog,
    drop_namespace,
    explain,
    make_adapter,
    unique_schema,
)
from queuert.ids import uuid7
from queuert.schedule import Schedule
from queuert.state import NewJob
from queuert_postgres import PgStateAdapter

SLACK = timedelta(seconds=20)
"""Due times differ by whole minutes; this covers the time between the client's clock and the
statement's."""


@pytest.fixture(scope="module", params=["plain", "partitioned"])
def adapter(
    loop: asyncio.AbstractEventLoop, request: pytest.FixtureRequest
) -> Iterator[PgStateAdapter[Any]]:
    ns = Namespace(unique_schema(), "queuert_")

    async def open_adapter() -> PgStateAdapter[Any]:
        adapter = await make_adapter("asyncpg", ns, partitioned=request.param == "partitioned")
        await adapter.migrate()
        return adapter

    adapter = loop.run_until_complete(open_adapter())
    yield adapter
    loop.run_until_complete(adapter.close())
    loop.run_until_complete(drop_namespace(ns))


jobs = st.lists(
    st.tuples(
        st.sampled_from([-5, 0, 0, 3, 10]),  # priority
        st.integers(min_value=0, max_value=40),  # due in that many minutes after a base time
        st.booleans(),  # locked by another transaction
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(jobs=jobs, base_minutes=st.sampled_from([-10, 60]))
def test_earliest_unlocked_ready_job_across_priorities(
    loop: asyncio.AbstractEventLoop,
    adapter: PgStateAdapter[Any],
    jobs: list[tuple[int, int, bool]],
    base_minutes: int,
) -> None:
    type_name = f"t{uuid.uuid4().hex[:10]}"
    base = datetime.now(timezone.utc) + timedelta(minutes=base_minutes)
    news = [
        NewJob(
            id=uuid7(),
            type_name=type_name,
            chain_type_name=type_name,
            input=None,
            schedule=Schedule(at=base + timedelta(minutes=minutes)),
            priority=priority,
        )
        for priority, minutes, _ in jobs
    ]
    locked = [new.id for new, (_, _, lock) in zip(news, jobs, strict=True) if lock]
    unlocked = [minutes for _, minutes, lock in jobs if not lock]

    async def check() -> None:
        await adapter.create_jobs(news)
        conn = await asyncpg.connect(DSN)
        try:
            async with conn.transaction():
                await conn.fetch(
                    f"SELECT 1 FROM {adapter.sql.names.job} WHERE id = ANY($1::uuid[]) FOR UPDATE",
                    locked,
                )
                due = await adapter.next_due([type_name, "other"])
                if not unlocked:
                    assert due is None, due
                    return
                want = max(
                    base + timedelta(minutes=min(unlocked)) - datetime.now(timezone.utc),
                    timedelta(0),
                )
                assert due is not None
                assert want - SLACK <= due <= want + SLACK, (due, want)
        finally:
            await conn.close()
        assert await adapter.next_due([type_name]) is not None, "every job once unlocked"

    loop.run_until_complete(check())


async def test_plan_walks_the_priorities_of_the_claim_index(namespace: Namespace) -> None:
    """On a backlog of ready and scheduled jobs of several types and priorities, ``next_due`` reads
    the claim index a few entries at a time (no sort of a type's ready jobs)."""
    columns = {"scheduled_at": "now() + (n % 100 - 50) * interval '1 minute'", "priority": "n % 4"}
    async with backlog(namespace, columns) as (adapter, conn):
        plan = await explain(conn, adapter.sql.next_due, ["t1", "t2"])
        assert f"{namespace.prefix}job_claim_idx" in plan, plan
        for absent in ("Sort", "Seq Scan", "Bitmap"):
            assert absent not in plan, plan
        assert await adapter.next_due(["t1", "t2"]) == timedelta(0)
