"""Periodic chains, on every adapter: one chain per tick however many workers start it, and after a
worker was down across several ticks only the most recent missed tick is started."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta, timezone

from queuert_conformance.behaviour_suite.jobs import ALL, Echo
from queuert_conformance.behaviour_suite.periodics import echo, echo_every, started_ticks
from queuert_conformance.behaviour_suite.support import MakeEnv, eventually


class TestPeriodic:
    async def test_one_chain_per_tick_however_many_workers_start_it(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        periodic = echo_every(0.2)
        workers = [env.worker({Echo: echo}, periodic=[periodic]) for _ in range(3)]
        for worker in workers:
            await worker.start()

        async def three_ticks() -> bool:
            return len(await started_ticks(env)) >= 3

        await eventually(three_ticks, timeout=10)
        for worker in workers:
            await worker.close()
        ticks = await started_ticks(env)
        assert len(ticks) == len(set(ticks)), f"a tick was started twice: {ticks}"
        for earlier, later in itertools.pairwise(ticks):
            assert (later - earlier) % timedelta(seconds=0.2) == timedelta(0), (earlier, later)

    async def test_after_a_worker_was_down_only_the_latest_missed_tick_starts(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        periodic = echo_every(0.3)
        async with env.worker({Echo: echo}, periodic=[periodic]):

            async def first() -> bool:
                return len(await started_ticks(env)) >= 1

            await eventually(first, timeout=10)
        (before,) = (await started_ticks(env))[-1:]
        # the worker is down while four more ticks pass
        down_until = before + 5 * timedelta(
            seconds=0.3
        )  # the event waited for: the clock passing it
        await asyncio.sleep(max((down_until - datetime.now(timezone.utc)).total_seconds(), 0.0))
        restart_tick = periodic.tick_at_or_before(datetime.now(timezone.utc))
        assert restart_tick is not None
        count = len(await started_ticks(env))
        async with env.worker({Echo: echo}, periodic=[periodic]):

            async def restarted() -> bool:
                return len(await started_ticks(env)) > count

            await eventually(restarted, timeout=10)
        after = [t for t in await started_ticks(env) if t > before]
        assert after and min(after) >= restart_tick, (
            f"ticks missed while no worker ran were replayed: {after} (restart at {restart_tick})"
        )
