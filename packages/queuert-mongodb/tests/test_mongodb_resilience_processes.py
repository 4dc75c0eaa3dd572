"""Resilience with worker *processes* sharing one collection prefix: one of two worker processes is
SIGKILLed while its handlers are inside jobs (staged mode, 2 s lease) and a new process starts under
the same worker name. Every chain completes exactly once, the killed worker's jobs are reclaimed
once their lease ran out (or, for jobs a transaction of the killed process had written, once the
server aborted that transaction), and the surviving process keeps going. Wake-ups travel over
change streams."""

from __future__ import annotations

import contextlib
import sys
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
from queuert_conformance.resilience import producing_client
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
        run = await resilience_fleet.kill_one_mid_job(
            fleet,
            client,
            lambda expected, timeout: wait_all_closed(
                fleet.prefix, fleet.url, expected, timeout=timeout
            ),
            options,
            two_step=160,
            joins=8,
            hang_timeout=60,
            close_timeout=180,
        )
    victim, survivor, replacement = run.victim, run.survivor, run.replacement
    hung, killed_at = run.hung, run.killed_at
    await check_exactly_once(fleet.prefix, fleet.url, run.work, since)
    marks = fleet.marks()
    rerun = run.reruns(marks)
    # All four slots of the victim were inside the hung jobs when it was killed, so those are the
    # jobs it held mid-attempt: they are taken over once its lease is gone. Every other job it had
    # run had ended before the kill: completed, or failed (MongoDB fails a conflicting write at
    # once, WriteConflict) with its retry recorded. A later run of such a job is that retry: due
    # at its retry time, it starts after the older due jobs of the backlog, and if the victim's
    # last claim (it claims ahead for a prefetch buffer) took it in a transaction left open by
    # the kill, only after that transaction's lifetime and then the backlog. Neither is bounded
    # by a lease, so only the hung jobs measure the takeover; the exactly-once check above
    # covers the retries.
    delays: dict[str, float] = {}
    for job_id in hung:
        runs = rerun[job_id]
        held = [i for i, run in enumerate(runs) if run["pid"] == victim.pid]
        assert held and held[-1] + 1 < len(runs), f"job {job_id} was never taken over: {runs}"
        again = runs[held[-1] + 1]
        assert again["pid"] in (survivor.pid, replacement.pid)
        delays[job_id] = again["t"] - killed_at
    retried = [
        runs[i + 1]["t"] - killed_at
        for job_id, runs in rerun.items()
        if job_id not in hung
        for i, run in enumerate(runs[:-1])
        if run["pid"] == victim.pid
    ]
    # The victim's renewer writes the leases of its four jobs every RENEW_EVERY in one
    # transaction. Killed inside it, the transaction stays open on the server with those writes
    # (a conflict for every reaper) until the server aborts it at the transaction lifetime limit
    # (transactionLifetimeLimitSeconds: mongod counts it from the transaction's start, SecantusDB
    # from its last statement); killed outside one, its leases run out after LEASE. The next
    # reap, at most REAP_INTERVAL later, returns the jobs and announces them; being the oldest
    # due jobs, the next claim starts them. So: the lease, or that limit, plus a reap, plus slack
    # for a claim and a handler start on a loaded machine (up to 4 s seen at load average 15;
    # CI runs three test processes on two cores).
    bound = LEASE + REAP_INTERVAL + TRANSACTION_LIFETIME + 10
    slowest = max(delays, key=delays.__getitem__)
    assert delays[slowest] <= bound, (
        f"hung job {slowest} taken over after {delays[slowest]:.2f}s (bound {bound}s); runs "
        f"(pid, attempt, seconds after the kill): "
        f"{[(r['pid'], r['attempt'], round(r['t'] - killed_at, 2)) for r in rerun[slowest]]}; "
        f"victim {victim.pid}, survivor {survivor.pid}, replacement {replacement.pid}\n"
        f"{fleet.logs()}"
    )
    assert min(delays.values()) >= LEASE - RENEW_EVERY - 0.5, (
        f"taken over after {min(delays.values()):.2f}s: before the lease could have expired"
    )
    assert any(m["pid"] == survivor.pid and m["t"] > killed_at for m in marks)
    assert any(m["pid"] == survivor.pid and m["t"] < killed_at for m in marks)
    completed_by = await _completed_by(fleet, list(hung))
    assert set(completed_by.values()) <= {survivor.worker_id, replacement.worker_id}
    print(
        f"\nkilled worker's {len(delays)} hung jobs taken over "
        f"{min(delays.values()):.2f}-{max(delays.values()):.2f}s after SIGKILL (lease {LEASE}s, "
        f"bound {bound}s); {len(retried)} retries of its earlier failed attempts ran "
        f"{min(retried, default=0):.2f}-{max(retried, default=0):.2f}s after it; "
        f"{len(rerun) - len(hung)} jobs re-run after a failed attempt"
    )


async def _completed_by(fleet: Fleet, job_ids: list[str]) -> dict[str, str]:
    state = await open_adapter(fleet.prefix, fleet.url)
    try:
        docs = state.jobs.find({"_id": {"$in": [ObjectId(j) for j in job_ids]}})
        return {str(d["_id"]): d["completed_by"] async for d in docs}
    finally:
        await state.close()
