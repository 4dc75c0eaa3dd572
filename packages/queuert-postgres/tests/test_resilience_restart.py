"""Resilience: the PostgreSQL server restarts (``pg_ctl restart -m fast``) while a worker processes
chains. Every chain still completes exactly once, the same worker goes on, and the LISTEN/NOTIFY
adapter reconnects: a chain started after the restart wakes the idle worker at once, well within its
(long) poll interval.

The server is a private cluster started for this module (never the shared one on :5432).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from pg_cluster import PrivateCluster
from queuert import Attempt, Backoff, Client, Lease, Worker
from queuert_conformance.resilience import (
    JOB_TYPES,
    N,
    Progress,
    RLeaf,
    WorkerSpy,
    handlers,
    start_workload,
)
from queuert_postgres import PgNotifyAdapter, PgStateAdapter
from resilience_support import check_exactly_once, install_audit, wait_all_closed

POLL = 5.0
"""The worker's poll interval and reap interval: a wake-up much sooner than this is a notification."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    server = PrivateCluster()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_server_restart_during_processing(cluster: PrivateCluster) -> None:
    dsn = cluster.dsn
    schema, prefix = f"qt_{uuid.uuid4().hex[:12]}", "queuert_"
    state = await PgStateAdapter.connect(dsn, schema=schema, table_prefix=prefix, max_size=12)
    spy = WorkerSpy(state)
    notify = PgNotifyAdapter(
        dsn,
        channel_prefix=f"qt{uuid.uuid4().hex[:12]}",
        reconnect_initial_delay=0.05,
        reconnect_max_delay=0.5,
    )
    progress = Progress()
    client: Client[Any] = Client(spy, job_types=JOB_TYPES, notify=notify, observability=progress)
    executions: Counter[str] = Counter()
    started_at: dict[str, float] = {}
    loop = asyncio.get_running_loop()

    def record(attempt: Attempt[Any]) -> None:
        executions[attempt.job.id] += 1
        started_at.setdefault(attempt.job.id, loop.time())

    worker: Worker[Any] = Worker(
        client,
        concurrency=10,
        handlers=handlers(record),
        poll_interval=POLL,
        reap_interval=POLL,
        lease=Lease(duration=2.0, renew_every=0.5),
        backoff=Backoff(initial=0.02, maximum=0.2, jitter=0.1),
        recovery_backoff=Backoff(initial=0.05, maximum=0.5, jitter=0.1),
        shutdown_timeout=5,
    )
    try:
        await state.migrate()
        await install_audit(dsn, schema, prefix)
        work = await start_workload(client, two_step=400, joins=20)
        assert work.chains == 500
        async with worker:
            listener_before = notify.listener_pid
            assert listener_before is not None
            await progress.reached(300)
            restarted = loop.time()
            at_restart = progress.completed
            await cluster.restart()
            print(f"\nrestart took {loop.time() - restarted:.2f}s at {progress.completed} attempts")
            took = await wait_all_closed(dsn, schema, prefix, work.chains, timeout=60)

            # The listening connection came back (a new backend) ...
            await _until(lambda: notify.reconnects >= 1, timeout=10, what="LISTEN to reconnect")
            assert notify.listener_pid not in (None, listener_before)
            # ... and wakes the idle worker: start a chain right after the worker went to sleep just
            # after a reap (its own next wake-up is then almost POLL seconds away).
            await _asleep_after_reap(worker, spy, loop)
            committed = loop.time()
            chain = await _start(client, RLeaf(N(7)))
            await client.wait_for_chain(chain, timeout=POLL * 2, poll_interval=0.1)
            latency = started_at[chain.id] - committed
            assert worker._main is not None and not worker._main.done(), "the same worker goes on"
        work.leaves.append(chain)
        await check_exactly_once(dsn, schema, prefix, work)
        assert len(executions) == work.jobs
        # The server went down mid-run. (Whether a statement was in flight then is up to timing: the
        # pool replaces connections that died idle without an error.)
        assert at_restart < work.jobs - 100, "the restart happened while work was left"
        assert latency < 2.0, f"the wake-up took {latency:.2f}s: the notification did not arrive"
        print(
            f"{work.chains} chains done {took:.1f}s after the restart; re-run attempts "
            f"{sum(executions.values()) - len(executions)}, worker errors "
            f"{progress.count('worker_error')}, state errors {progress.count('state_adapter_error')}"
            f", reaped {progress.count('job_reaped')}; wake-up after the restart {latency * 1000:.0f} ms"
        )
    finally:
        await worker.close()
        await client.close()
        await notify.close()
        await state.close()


async def _start(client: Client[Any], job: Any) -> Any:
    async with client.transaction() as tx:
        return await client.start_chain(job, tx=tx)


async def _until(predicate: Any, *, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _asleep_after_reap(
    worker: Worker[Any], spy: WorkerSpy, loop: asyncio.AbstractEventLoop
) -> None:
    """Return once the worker, idle, has just gone to sleep in the same iteration as a reap."""
    deadline = loop.time() + 3 * POLL
    while True:
        spy.about_to_sleep.clear()
        await asyncio.wait_for(spy.about_to_sleep.wait(), deadline - loop.time())
        if worker.in_flight == 0 and loop.time() - spy.last_reap < 0.5:
            return
