"""Resilience: the worker's server connections are killed (``KILL CONNECTION``) again and again
while it processes a thousand chains. Every chain still completes exactly once and the same worker
recovers each time, without a restart.

Only this test's own connections are killed: the thread ids of the worker adapter's pool, read from
the pool itself (other people run tests against the same server).
"""

from __future__ import annotations

from mysql_helpers import drop_prefix, unique_prefix
from mysql_resilience_support import (
    Rig,
    check_exactly_once,
    drop_audit,
    kill_connections,
    thread_ids,
    wait_all_closed,
)
from queuert_conformance.resilience import start_workload

KILL_EVERY = 120
"""Kill the worker's connections each time this many more attempts have completed."""


async def test_chains_complete_exactly_once_while_connections_are_killed() -> None:
    prefix = unique_prefix()
    try:
        async with Rig(prefix) as rig:
            # chains come from the producer, whose connections are never killed
            work = await start_workload(rig.producer, two_step=800, joins=40)
            assert work.chains == 1000
            kills: list[int] = []
            async with rig.worker:
                for threshold in range(KILL_EVERY, work.jobs - KILL_EVERY // 2, KILL_EVERY):
                    await rig.progress.reached(threshold)
                    kills.append(await kill_connections(thread_ids(rig.state), prefix=prefix))
                took = await wait_all_closed(prefix, work.chains, timeout=120)
                # The same worker goes on after one more kill: a new batch completes.
                kills.append(await kill_connections(thread_ids(rig.state), prefix=prefix))
                more = await start_workload(rig.producer, two_step=20, joins=2, base=50_000)
                work.extend(more)
                await wait_all_closed(prefix, work.chains, timeout=60)
                main = rig.worker._main
                assert main is not None and not main.done(), "the worker kept running"
        await check_exactly_once(prefix, work)
        assert len(rig.executions) == work.jobs
        assert all(kills), f"every kill ended connections: {kills}"
        assert len(kills) >= 10, "the run was interrupted many times"
        felt = sum(
            rig.progress.count(name)
            for name in ("worker_error", "state_adapter_error", "job_attempt_failed")
        )
        assert felt > 0, "the kills reached the worker"
        print(
            f"\n{work.chains} chains, {work.jobs} jobs, {took:.1f}s after the last kill, "
            f"{len(kills)} kills ({sum(kills)} connections); {rig.summary()}"
        )
    finally:
        await drop_audit(prefix)
        await drop_prefix(prefix)
