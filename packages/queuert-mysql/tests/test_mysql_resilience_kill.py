"""Resilience: the worker's server connections are killed (``KILL CONNECTION``) again and again
while it processes a thousand chains. Every chain still completes exactly once and the same worker
recovers each time, without a restart.

Only this test's own connections are killed: the thread ids of the worker adapter's pool, read from
the pool itself (other people run tests against the same server).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from mysql_helpers import drop_prefix, make_adapter, unique_prefix
from mysql_resilience_support import (
    JOB_TYPES,
    Progress,
    check_exactly_once,
    drop_audit,
    handlers,
    install_audit,
    kill_connections,
    start_workload,
    thread_ids,
    wait_all_closed,
)
from queuert import Attempt, Backoff, Client, Lease, Worker
from queuert.in_memory import InProcessNotifyAdapter

KILL_EVERY = 120
"""Kill the worker's connections each time this many more attempts have completed."""


async def test_chains_complete_exactly_once_while_connections_are_killed() -> None:
    prefix = unique_prefix()
    state = await make_adapter(prefix, maxsize=12)
    producer_state = await make_adapter(prefix, maxsize=2)
    notify = InProcessNotifyAdapter()
    progress = Progress()
    client: Client[Any] = Client(state, job_types=JOB_TYPES, notify=notify, observability=progress)
    # Chains are started by a separate producer whose connections are never killed.
    producer: Client[Any] = Client(producer_state, job_types=JOB_TYPES, notify=notify)
    executions: Counter[str] = Counter()

    def record(attempt: Attempt[Any]) -> None:
        executions[attempt.job.id] += 1

    worker: Worker[Any] = Worker(
        client,
        concurrency=10,
        handlers=handlers(record),
        poll_interval=1.0,
        lease=Lease(duration=2.0, renew_every=0.5),
        reap_interval=0.25,
        backoff=Backoff(initial=0.02, maximum=0.2, jitter=0.1),
        recovery_backoff=Backoff(initial=0.02, maximum=0.3, jitter=0.1),
        shutdown_timeout=5,
    )
    try:
        await state.migrate()
        await install_audit(prefix)
        work = await start_workload(producer, two_step=800, joins=40)
        assert work.chains == 1000
        kills: list[int] = []
        async with worker:
            for threshold in range(KILL_EVERY, work.jobs - KILL_EVERY // 2, KILL_EVERY):
                await progress.reached(threshold)
                kills.append(await kill_connections(thread_ids(state)))
            took = await wait_all_closed(prefix, work.chains, timeout=120)
            # The same worker goes on after one more kill: a new batch completes.
            kills.append(await kill_connections(thread_ids(state)))
            more = await start_workload(producer, two_step=20, joins=2, base=50_000)
            work.extend(more)
            await wait_all_closed(prefix, work.chains, timeout=60)
            assert worker._main is not None and not worker._main.done(), "the worker kept running"
        await check_exactly_once(prefix, work)
        assert len(executions) == work.jobs
        assert all(kills), f"every kill ended connections: {kills}"
        assert len(kills) >= 10, "the run was interrupted many times"
        felt = (
            progress.count("worker_error")
            + progress.count("state_adapter_error")
            + progress.count("job_attempt_failed")
        )
        assert felt > 0, "the kills reached the worker"
        print(
            f"\n{work.chains} chains, {work.jobs} jobs, {took:.1f}s after the last kill, "
            f"{len(kills)} kills ({sum(kills)} connections); re-run attempts: "
            f"{sum(executions.values()) - work.jobs}; worker errors "
            f"{progress.count('worker_error')}, state errors "
            f"{progress.count('state_adapter_error')}, failed attempts "
            f"{progress.count('job_attempt_failed')}, reaped {progress.count('job_reaped')}"
        )
    finally:
        await worker.close()
        for closing in (client, producer, notify, state, producer_state):
            await closing.close()
        await drop_audit(prefix)
        await drop_prefix(prefix)
