"""Resilience: with transient state and notify failures injected, every chain completes, none twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from queuert import Attempt, Backoff, Lease

from queuert_conformance.behaviour_suite.faults import FlakyNotifyAdapter, FlakyStateAdapter
from queuert_conformance.behaviour_suite.jobs import ALL, Describe, Double, Num, Start, Text
from queuert_conformance.behaviour_suite.support import MakeEnv

CHAINS = 30


async def _run_chains(env: Any, client: Any, *, concurrency: int, workers: int = 1) -> Counter[str]:
    executions: Counter[str] = Counter()

    async def start(attempt: Attempt[Start]) -> Double:
        executions[attempt.job.id] += 1
        return Double(Num(attempt.input.value))

    async def double(attempt: Attempt[Double]) -> Num:
        executions[attempt.job.id] += 1
        await asyncio.sleep(0.001)
        return Num(attempt.input.value * 2)

    async def describe(attempt: Attempt[Describe]) -> Text:
        return Text("")

    chains = await env.start(*(Start(Num(i)) for i in range(CHAINS)))
    options: dict[str, Any] = {
        "concurrency": concurrency,
        "client": client,
        "poll_interval": 0.05,
        "backoff": Backoff(initial=0.01, maximum=0.05, jitter=0.5),
        "recovery_backoff": Backoff(initial=0.01, maximum=0.05, jitter=0.5),
        "lease": Lease(duration=1.0, renew_every=0.2),
        "reap_interval": 0.1,
    }
    pool = [
        env.worker({Start: start, Double: double, Describe: describe}, **options)
        for _ in range(workers)
    ]
    for worker in pool:
        await worker.start()
    try:
        for chain in chains:
            assert (
                await env.client.wait_for_chain(chain, timeout=60, poll_interval=0.05)
            ).value == chain.input.value * 2
    finally:
        for worker in pool:
            await worker.close()
    for chain in chains:
        jobs = (await env.client.list_chain_jobs(chain.id)).items
        assert [j.type_name for j in jobs] == ["b_start", "b_double"], (
            "each chain completed exactly once"
        )
    return executions


class TestStateResilience:
    @pytest.mark.parametrize(("concurrency", "workers"), [(1, 1), (4, 1), (2, 2)])
    async def test_chains_complete_despite_transient_state_errors(
        self, queuert_env: MakeEnv, concurrency: int, workers: int
    ) -> None:
        env = await queuert_env(job_types=ALL)
        flaky = FlakyStateAdapter(env.state, rate=0.1, fail_after_commit=True)
        client = env.another_client(state=flaky)
        executions = await _run_chains(env, client, concurrency=concurrency, workers=workers)
        assert flaky.injected > 5, "faults were injected"
        assert len(executions) == 2 * CHAINS


class TestNotifyResilience:
    async def test_chains_complete_despite_notify_errors(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        flaky = FlakyNotifyAdapter(env.notify, rate=0.3)
        client = env.another_client(notify=flaky)
        await _run_chains(env, client, concurrency=3)
