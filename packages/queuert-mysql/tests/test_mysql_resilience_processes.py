"""Resilience with worker *processes* sharing one table prefix: one of two worker processes is
SIGKILLed while its handlers are inside jobs (staged mode, 2 s lease) and a new process starts under
the same worker name. Every chain completes exactly once, the killed worker's jobs are reclaimed
within about one lease, and the surviving process keeps going. Wake-ups travel over Redis."""

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
from mysql_helpers import URL, drop_prefix, make_adapter, sql, unique_prefix
from mysql_resilience_support import check_exactly_once, drop_audit, install_audit, wait_all_closed
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
from queuert_redis import RedisNotifyAdapter

WORKER_SCRIPT = Path(__file__).with_name("mysql_resilience_worker.py")
REDIS_URL = os.environ.get("QUEUERT_REDIS_URL", "redis://127.0.0.1:6379/0")
LEASE = 2.0
RENEW_EVERY = 0.5
REAP_INTERVAL = 0.25


class Fleet(resilience_fleet.Fleet):
    """Worker processes under one table prefix, woken over Redis."""

    def __init__(self, prefix: str, root: Path) -> None:
        script = [sys.executable, str(WORKER_SCRIPT), "--dsn", URL, "--prefix", prefix]
        super().__init__(root, [*script, "--redis", REDIS_URL])
        self.prefix = prefix


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    prefix = unique_prefix()
    state = await make_adapter(prefix, maxsize=2)
    try:
        await state.migrate()
    finally:
        await state.close()
    await install_audit(prefix)
    result = Fleet(prefix, tmp_path)
    try:
        yield result
    finally:
        await result.close()
        await drop_audit(prefix)
        await drop_prefix(prefix)


@contextlib.asynccontextmanager
async def producer(fleet: Fleet) -> AsyncIterator[Client[Any]]:
    state = await make_adapter(fleet.prefix, maxsize=2)
    notify = RedisNotifyAdapter(REDIS_URL, prefix=fleet.channel_prefix)
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

        await wait_all_closed(fleet.prefix, work.chains, timeout=60)
        # The survivor kept going: a chain started now is still processed.
        extra = Workload()
        async with client.transaction() as tx:
            extra.leaves = await client.start_chains(
                [RLeaf(N(900_000 + i)) for i in range(20)], tx=tx
            )
        work.extend(extra)
        await wait_all_closed(fleet.prefix, work.chains, timeout=30)
        assert survivor.process.returncode is None, "the surviving worker process kept running"
        assert await fleet.stop(survivor) == 0
        assert await fleet.stop(replacement) == 0

    await check_exactly_once(fleet.prefix, work)
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
    completed_by = await _completed_by(fleet.prefix, list(hung))
    assert set(completed_by.values()) <= {survivor.worker_id, replacement.worker_id}
    print(
        f"\nkilled worker's {len(rerun)} jobs ({len(hung)} hung) reclaimed {min(delays):.2f}-{max(delays):.2f}s "
        f"after SIGKILL (lease {LEASE}s, bound {bound}s); the survivor ran "
        f"{sum(1 for m in marks if m['pid'] == survivor.pid)} attempts, the replacement "
        f"{sum(1 for m in marks if m['pid'] == replacement.pid)}"
    )


async def _completed_by(prefix: str, job_ids: list[str]) -> dict[str, str]:
    rows = await sql(
        f"SELECT id, CONVERT(completed_by USING utf8mb4) FROM `{prefix}job` "
        f"WHERE id IN ({', '.join(['%s'] * len(job_ids))})",
        *job_ids,
    )
    return {r[0]: r[1] for r in rows}


def _now() -> float:
    return time.time()
