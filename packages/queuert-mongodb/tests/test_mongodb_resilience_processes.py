"""Resilience with worker *processes* sharing one collection prefix: one of two worker processes is
SIGKILLed while its handlers are inside jobs (staged mode, 2 s lease) and a new process starts under
the same worker name. Every chain completes exactly once, the killed worker's jobs are reclaimed
once their lease ran out (or, for jobs a transaction of the killed process had written, once the
server aborted that transaction), and the surviving process keeps going. Wake-ups travel over
change streams."""

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

import pytest
from bson import ObjectId
from mongo_helpers import DATABASE, drop_prefix, open_adapter, unique_prefix
from mongo_resilience_support import check_exactly_once, start_audit, wait_all_closed
from mongo_server import server_url
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
from queuert_mongodb import MongoNotifyAdapter

WORKER_SCRIPT = Path(__file__).with_name("mongo_resilience_worker.py")
LEASE = 2.0
RENEW_EVERY = 0.5
REAP_INTERVAL = 0.25
TRANSACTION_LIFETIME = 60.0
"""The server's transactionLifetimeLimitSeconds (the default; SecantusDB has the same)."""


class Fleet(resilience_fleet.Fleet):
    """Worker processes under one collection prefix."""

    def __init__(self, prefix: str, url: str, root: Path) -> None:
        script = [sys.executable, str(WORKER_SCRIPT), "--url", url, "--database", DATABASE]
        super().__init__(root, [*script, "--prefix", prefix])
        self.prefix = prefix
        self.url = url


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    prefix, url = unique_prefix(), server_url()
    state = await open_adapter(prefix, url)
    try:
        await state.migrate()
    finally:
        await state.close()
    result = Fleet(prefix, url, tmp_path)
    try:
        yield result
    finally:
        await result.close()
        await drop_prefix(prefix, url)


@contextlib.asynccontextmanager
async def producer(fleet: Fleet) -> AsyncIterator[Client[Any]]:
    state = await open_adapter(fleet.prefix, fleet.url)
    notify = MongoNotifyAdapter(state.client, database=DATABASE, collection_prefix=fleet.prefix)
    async with producing_client(state, notify) as client:
        yield client


async def test_sigkill_of_a_worker_process_mid_job(fleet: Fleet) -> None:
    options = (
        "--concurrency=4",
        f"--lease={LEASE}",
        f"--renew-every={RENEW_EVERY}",
        f"--reap-interval={REAP_INTERVAL}",
        "--job-seconds=0.02",
    )
    since = await start_audit(fleet.url)
    async with producer(fleet) as client:
        victim = await fleet.spawn("victim", *options, "--hang-after=60")
        survivor = await fleet.spawn("survivor", *options)
        work = await start_workload(client, two_step=160, joins=8)
        assert work.chains == 200

        # The victim's handlers hang inside their jobs once it has started 60 attempts: wait until
        # all four of its slots are inside a job, then SIGKILL it.
        await wait_until(
            lambda: len(fleet.hanging(victim.pid)) == 4, timeout=60, what="the victim to hang"
        )
        hung = {m["job"]: m for m in fleet.hanging(victim.pid)}
        killed_at = time.time()
        os.kill(victim.pid, signal.SIGKILL)
        assert await asyncio.wait_for(victim.process.wait(), 10) == -signal.SIGKILL
        # A new process under the same worker name (a new worker id) joins.
        replacement = await fleet.spawn("victim", *options)
        assert replacement.worker_id != victim.worker_id

        await wait_all_closed(fleet.prefix, fleet.url, work.chains, timeout=180)
        # The survivor kept going: a chain started now is still processed.
        extra = Workload()
        async with client.transaction() as tx:
            extra.leaves = await client.start_chains(
                [RLeaf(N(900_000 + i)) for i in range(20)], tx=tx
            )
        work.extend(extra)
        await wait_all_closed(fleet.prefix, fleet.url, work.chains, timeout=60)
        assert survivor.process.returncode is None, "the surviving worker process kept running"
        assert await fleet.stop(survivor) == 0
        assert await fleet.stop(replacement) == 0

    await check_exactly_once(fleet.prefix, fleet.url, work, since)
    marks = fleet.marks()
    # Never two runs of one attempt number.
    attempts = Counter((m["job"], m["attempt"]) for m in marks)
    assert all(n == 1 for n in attempts.values()), "an attempt ran twice"
    by_job: dict[str, list[dict[str, Any]]] = {}
    for m in sorted(marks, key=lambda m: m["attempt"]):
        by_job.setdefault(m["job"], []).append(m)
    rerun = {job: runs for job, runs in by_job.items() if len(runs) > 1}
    assert set(hung) <= set(rerun), "every hung job was run again"
    # A job the victim held was taken over by another process after its lease ran out. Other
    # re-runs follow a failed attempt: MongoDB fails a conflicting write at once (WriteConflict),
    # and the attempt is retried; the exactly-once check above covers them.
    delays = []
    for job_id, runs in rerun.items():
        held = [i for i, run in enumerate(runs) if run["pid"] == victim.pid]
        if not held:
            continue
        assert held[-1] + 1 < len(runs), f"job {job_id} was never taken over: {runs}"
        again = runs[held[-1] + 1]
        assert again["pid"] in (survivor.pid, replacement.pid)
        delays.append(again["t"] - killed_at)
    assert delays, "the victim's jobs were taken over"
    # A process killed inside one of its transactions (a lease renewal, a claim) leaves it open on
    # the server until the transaction lifetime limit (60 s) aborts it; until then the jobs it
    # wrote conflict with the reaper. So: a lease, or that limit, plus slack.
    bound = LEASE + REAP_INTERVAL + TRANSACTION_LIFETIME + 5
    assert max(delays) <= bound, f"reclaimed after {max(delays):.2f}s (bound {bound}s)"
    assert min(delays) >= LEASE - RENEW_EVERY - 0.5, (
        f"reclaimed after {min(delays):.2f}s: before the lease could have expired"
    )
    assert any(m["pid"] == survivor.pid and m["t"] > killed_at for m in marks)
    assert any(m["pid"] == survivor.pid and m["t"] < killed_at for m in marks)
    completed_by = await _completed_by(fleet, list(hung))
    assert set(completed_by.values()) <= {survivor.worker_id, replacement.worker_id}
    print(
        f"\nkilled worker's {len(delays)} jobs ({len(hung)} hung) reclaimed "
        f"{min(delays):.2f}-{max(delays):.2f}s after SIGKILL (lease {LEASE}s, bound {bound}s); "
        f"{len(rerun) - len(delays)} jobs re-run after a failed attempt"
    )


async def _completed_by(fleet: Fleet, job_ids: list[str]) -> dict[str, str]:
    state = await open_adapter(fleet.prefix, fleet.url)
    try:
        docs = state.jobs.find({"_id": {"$in": [ObjectId(j) for j in job_ids]}})
        return {str(d["_id"]): d["completed_by"] async for d in docs}
    finally:
        await state.close()
