"""Resilience with worker *processes* sharing one schema:

* one of two worker processes is SIGKILLed while its handlers are inside jobs (staged mode, 2 s lease)
  and a new process starts under the same worker name: every chain completes exactly once, the killed
  worker's jobs are reclaimed within about one lease, and the surviving process keeps going;
* jobs that run four times longer than their lease keep it by renewal and run once, while another
  worker process with free slots reaps every 100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
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
    start_workload,
    wait_until,
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
    options = (
        "--concurrency=4",
        f"--lease={LEASE}",
        f"--renew-every={RENEW_EVERY}",
        f"--reap-interval={REAP_INTERVAL}",
        "--job-seconds=0.02",
    )
    async with producer(fleet) as client:
        victim = await fleet.spawn("victim", *options, "--hang-after=60")
        survivor = await fleet.spawn("survivor", *options)
        work = await start_workload(client, two_step=240, joins=12)
        assert work.chains == 300

        # The victim's handlers hang inside their jobs once it has started 60 attempts: wait until
        # all four of its slots are inside a job, then SIGKILL it.
        await wait_until(
            lambda: len(fleet.hanging(victim.pid)) == 4, timeout=30, what="the victim to hang"
        )
        hung = {m["job"]: m for m in fleet.hanging(victim.pid)}
        killed_at = _now()
        os.kill(victim.pid, signal.SIGKILL)
        assert await asyncio.wait_for(victim.process.wait(), 10) == -signal.SIGKILL
        # A new process under the same worker name (a new worker id) joins.
        replacement = await fleet.spawn("victim", *options)
        assert replacement.worker_id != victim.worker_id

        await wait_all_closed(DSN, ns.schema, ns.prefix, work.chains, timeout=60)
        # The survivor kept going: a chain started now is still processed.
        extra = Workload()
        async with client.transaction() as tx:
            extra.leaves = await client.start_chains(
                [RLeaf(N(900_000 + i)) for i in range(20)], tx=tx
            )
        work.extend(extra)
        await wait_all_closed(DSN, ns.schema, ns.prefix, work.chains, timeout=30)
        assert survivor.process.returncode is None, "the surviving worker process kept running"
        assert await fleet.stop(survivor) == 0
        assert await fleet.stop(replacement) == 0

    await check_exactly_once(DSN, ns.schema, ns.prefix, work)
    marks = fleet.marks()
    # Never two runs of one attempt: a job runs again only after its lease was taken back.
    attempts = Counter((m["job"], m["attempt"]) for m in marks)
    assert all(n == 1 for n in attempts.values()), "an attempt ran twice"
    # The jobs the victim held when it died - the four hung ones, and any whose completion it had
    # not written yet (a finished handler frees its slot before its completion is written) - were
    # run again by another process, within about one lease of the kill. No other job ran twice.
    by_job: dict[str, list[dict[str, Any]]] = {}
    for m in sorted(marks, key=lambda m: m["attempt"]):
        by_job.setdefault(m["job"], []).append(m)
    rerun = {job: runs for job, runs in by_job.items() if len(runs) > 1}
    assert set(hung) <= set(rerun), "every hung job was run again"
    delays = []
    for job_id, runs in rerun.items():
        first, again = runs[-2], runs[-1]
        assert first["pid"] == victim.pid, f"job {job_id} re-run although its worker lived: {runs}"
        assert again["pid"] in (survivor.pid, replacement.pid)
        delays.append(again["t"] - killed_at)
    bound = LEASE + REAP_INTERVAL + 1.5
    assert max(delays) <= bound, f"reclaimed after {max(delays):.2f}s (bound {bound}s)"
    assert min(delays) >= LEASE - RENEW_EVERY - 0.5, (
        f"reclaimed after {min(delays):.2f}s: before the lease could have expired"
    )
    # the survivor worked before and after the kill
    assert any(m["pid"] == survivor.pid and m["t"] > killed_at for m in marks)
    assert any(m["pid"] == survivor.pid and m["t"] < killed_at for m in marks)
    completed_by = await _completed_by(ns, list(hung))
    assert set(completed_by.values()) <= {survivor.worker_id, replacement.worker_id}
    print(
        f"\nkilled worker's {len(rerun)} jobs ({len(hung)} hung) reclaimed {min(delays):.2f}-{max(delays):.2f}s "
        f"after SIGKILL (lease {LEASE}s, bound {bound}s); the survivor ran "
        f"{sum(1 for m in marks if m['pid'] == survivor.pid)} attempts, the replacement "
        f"{sum(1 for m in marks if m['pid'] == replacement.pid)}"
    )


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
