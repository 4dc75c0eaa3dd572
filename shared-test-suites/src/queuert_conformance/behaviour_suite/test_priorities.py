"""Priorities: set when a chain starts, kept or overridden by continuations, and the order in which
a worker takes ready jobs."""

from __future__ import annotations

import pytest
from queuert import Attempt, UsageError

from queuert_conformance.behaviour_suite.jobs import ALL, Double, Echo, Num, Step
from queuert_conformance.behaviour_suite.support import MakeEnv


async def _double(attempt: Attempt[Double]) -> Num:
    return Num(attempt.input.value * 2)


class TestWorkerPriorities:
    async def test_a_worker_takes_higher_priorities_first_then_the_oldest(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        plan = [(1, 0), (2, -3), (3, 5), (4, 0), (5, 5), (6, 9)]
        chains = await env.start(*[Echo(Num(n), priority=p) for n, p in plan])
        assert [c.root.priority for c in chains] == [p for _, p in plan]
        seen: list[int] = []

        async def echo(attempt: Attempt[Echo]) -> Num:
            seen.append(attempt.input.value)
            return attempt.input

        async with env.worker({Echo: echo}, concurrency=1, prefetch=0):
            for chain in chains:
                await env.wait(chain)
        assert seen == [6, 3, 5, 1, 4, 2]

    async def test_a_continuation_keeps_the_chain_priority_unless_it_sets_its_own(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)

        async def step(attempt: Attempt[Step]) -> Step | Double:
            n = attempt.input.value
            if n == 0:
                return Step(Num(1))  # inherits
            if n == 1:
                return Step(Num(2), priority=-4)  # overrides
            return Double(Num(n))  # inherits the override

        chain = await env.start_one(Step(Num(0), priority=7))
        async with env.worker({Step: step, Double: _double}):
            assert await env.wait(chain) == Num(4)
        jobs = (await env.client.list_chain_jobs(chain.id)).items
        assert [job.priority for job in jobs] == [7, 7, -4, -4]

    async def test_a_chain_without_priority_has_zero(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        chain = await env.start_one(Echo(Num(1)))
        job = await env.client.get_job(chain.id)
        assert job is not None and job.priority == 0 and chain.root.priority == 0

    @pytest.mark.parametrize("bad", [1.5, "1", True, 2**31, -(2**31) - 1])
    async def test_a_priority_outside_a_32_bit_int_is_refused(
        self, queuert_env: MakeEnv, bad: object
    ) -> None:
        await queuert_env(job_types=ALL)
        with pytest.raises(UsageError, match="priority"):
            Echo(Num(1), priority=bad)  # type: ignore[arg-type]
