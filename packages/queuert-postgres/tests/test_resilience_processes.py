"""Resilience with worker *processes* sharing one schema:

* one of two worker processes is SIGKILLed while its handlers are inside jobs (staged mode, 2 s lease)
  and a new process starts under the same worker name: every chain completes exactly once, the killed
  worker's jobs are reclaimed within about one lease, and the surviving process keeps going;
* jobs that run four times longer than their lease keep it by renewal and run once, while another
  worker process with free slots reaps every 100 ms.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pg_helpers import DSN, Namespace
from queuert import Client
from queuert_conformance import worker_process as resilience_fleet
from queuert_conformance.resilience import (
    N,
    RLeaf,
    Workload,
    producing_client,
)
from queuert_postgres import PgNotifyAdapter, PgStateAdapter
from resilience_support import check_exactly_once, install_audit, wait_all_closed

WORKER_SCRIPT = Path(__file__).with_name("resilience_worker.py")
LEASE = 2.0
RENEW_EVERY = 0.5
REAP_INTERVAL = 0.25


class Fleet(resilience_fleet.Fleet):
    """Worker processes on one schema, woken by LISTEN/NOTIFY."""

    def __init__(self, namespace: Namespace, root: Path) -> None:
        script = [sys.executable, str(WORKER_SCRIPT), "--dsn", DSN]
        super().__init__(
            root, [*script, "--schema", namespace.schema, "--prefix", namespace.prefix]
        )
        self.namespace = namespace


@pytest.fixture
async def fleet(namespace: Namespace, tmp_path: Path) -> AsyncIterator[Fleet]:
    state = await PgStateAdapter.connect(
        DSN, schema=namespace.schema, table_prefix=namespace.prefix, max_size=2
    )
    try:
        await state.migrate()
    finally:
        await state.close()
    await install_audit(DSN, namespace.schema, namespace.prefix)
    result = Fleet(namespace, tmp_path)
    try:
        yield result
    finally:
        await result.close()


@contextlib.asynccontextmanager
async def producer(fleet: Fleet) -> AsyncIterator[Client[Any]]:
    state = await PgStateAdapter.connect(
        DSN, schema=fleet.namespace.schema, table_prefix=fleet.namespace.prefix, max_size=2
    )
    notify = PgNotifyAdapter(DSN, channel_prefix=fleet.channel_prefix)
    async with producing_client(state, notify) as client:
        yield client


async def test_sigkill_of_a_worker_process_mid_job(fleet: Fleet) -> None:
    ns = fleet.namespace
    store = resilience_fleet.StoreChecks(
        wait_all_closed=lambda expected, timeout: wait_all_closed(
            DSN, ns.schema, ns.prefix, expected, timeout=timeout
        ),
        check_exactly_once=lambda work: check_exactly_once(DSN, ns.schema, ns.prefix, work),
        completed_by=lambda job_ids: _completed_by(ns, job_ids),
    )
    async with producer(fleet) as client:
        outcome = await resilience_fleet.sigkill_mid_job(
            fleet, client, store, lease=LEASE, renew_every=RENEW_EVERY, reap_interval=REAP_INTERVAL
        )
    print(f"\n{outcome}")


async def test_jobs_longer_than_their_lease_keep_it_and_run_once(fleet: Fleet) -> None:
    """Four 4-second jobs with a 1.5-second lease renewed every 0.25 s (two staged, two atomic) on two
    worker processes that both have free slots and reap every 100 ms: renewal (staged) and the row
    lock (atomic) keep every job with its first worker. (A renewal commits, so under a saturated
    machine with a durable server it may take a while: the lease leaves 1.25 s for it.)"""
    ns = fleet.namespace
    options = (
        "--concurrency=4",
        "--lease=1.5",
        "--renew-every=0.25",
        "--reap-interval=0.1",
        "--job-seconds=4",
        "--mode=mixed",
    )
    first = await fleet.spawn("first", *options)
    second = await fleet.spawn("second", *options)
    async with producer(fleet) as client:
        work = Workload()
        async with client.transaction() as tx:
            work.leaves = await client.start_chains([RLeaf(N(i)) for i in range(4)], tx=tx)
        await wait_all_closed(DSN, ns.schema, ns.prefix, work.chains, timeout=30)
    assert await fleet.stop(first) == 0
    assert await fleet.stop(second) == 0
    await check_exactly_once(DSN, ns.schema, ns.prefix, work)
    marks = fleet.marks()
    assert sorted(m["job"] for m in marks) == sorted(c.id for c in work.leaves), (
        f"every job ran exactly once: {marks}\n{fleet.logs()}"
    )
    assert {m["mode"] for m in marks} == {"staged", "atomic"}
    assert all(m["attempt"] == 1 for m in marks)
    completed_by = await _completed_by(ns, [c.id for c in work.leaves])
    assert completed_by == {m["job"]: m["worker"] for m in marks}


def _now() -> float:
    return time.time()


async def _completed_by(ns: Namespace, job_ids: list[str]) -> dict[str, str]:
    conn = await asyncpg.connect(DSN)
    try:
        rows = await conn.fetch(
            f'SELECT id::text, completed_by FROM "{ns.schema}"."{ns.prefix}job" '
            "WHERE id = ANY($1::uuid[])",
            job_ids,
        )
        return {r[0]: r[1] for r in rows}
    finally:
        await conn.close()
