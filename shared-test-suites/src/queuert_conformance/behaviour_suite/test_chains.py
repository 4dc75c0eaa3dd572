"""Chain patterns: linear, branched, loop, go-to; continuations with ids, schedules and blockers."""

from __future__ import annotations

from typing import Any

import pytest
from queuert import Attempt, InvalidJobIdError, Schedule, TxContext

from queuert_conformance.behaviour_suite.jobs import (
    ALL,
    Collect,
    Describe,
    Double,
    Gather,
    Leaf,
    Num,
    Start,
    Step,
    Text,
)
from queuert_conformance.behaviour_suite.support import MakeEnv


async def _double(attempt: Attempt[Double]) -> Num:
    return Num(attempt.input.value * 2)


async def _describe(attempt: Attempt[Describe]) -> Text:
    return Text(f"value {attempt.input.value}")


class TestPatterns:
    async def test_linear_chain(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)

        async def start(attempt: Attempt[Start]) -> Double:
            return Double(Num(attempt.input.value + 1))

        worker = env.worker({Start: start, Double: _double, Describe: _describe})
        chain = await env.start_one(Start(Num(4)))
        async with worker:
            assert (await env.wait(chain)).value == 10
        jobs = (await env.client.list_chain_jobs(chain.id)).items
        assert [(j.type_name, j.status) for j in jobs] == [
            ("b_start", "continued"),
            ("b_double", "completed"),
        ]
        assert jobs[0].succeeded_by_job_id == jobs[1].id
        assert all(j.chain_id == chain.id and j.chain_type_name == "b_start" for j in jobs)

    async def test_branched_chain_picks_the_next_type_at_run_time(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)

        async def start(attempt: Attempt[Start]) -> Double | Describe:
            n = attempt.input.value
            return Double(Num(n)) if n % 2 == 0 else Describe(Num(n))

        worker = env.worker({Start: start, Double: _double, Describe: _describe})
        even, odd = await env.start(Start(Num(2)), Start(Num(3)))
        async with worker:
            assert (await env.wait(even)).value == 4
            assert (await env.wait(odd)).text == "value 3"

    async def test_loop_continues_to_the_same_type(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)

        async def step(attempt: Attempt[Step]) -> Step | Num:
            n = attempt.input.value
            return Step(Num(n + 1)) if n < 5 else Num(n)

        worker = env.worker({Step: step, Double: _double, Describe: _describe})
        chain = await env.start_one(Step(Num(0)))
        async with worker:
            assert (await env.wait(chain)).value == 5
        jobs = (await env.client.list_chain_jobs(chain.id)).items
        assert len(jobs) == 6
        assert [j.input.value for j in jobs] == [0, 1, 2, 3, 4, 5]

    async def test_go_to_jumps_between_types(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)

        async def step(attempt: Attempt[Step]) -> Step | Describe:
            n = attempt.input.value
            return Step(Num(n + 10)) if n < 10 else Describe(Num(n))

        worker = env.worker({Step: step, Double: _double, Describe: _describe})
        chain = await env.start_one(Step(Num(1)))
        async with worker:
            assert (await env.wait(chain)).text == "value 11"


class TestContinuations:
    async def test_a_continuation_can_take_the_callers_id(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        wanted = env.state.ids.generate()

        async def start(attempt: Attempt[Start]) -> Double:
            return Double(Num(1), id=wanted)

        worker = env.worker({Start: start, Double: _double, Describe: _describe})
        chain = await env.start_one(Start(Num(0)))
        async with worker:
            await env.wait(chain)
        job = await env.client.get_job(wanted)
        assert job is not None and job.chain_id == chain.id

    async def test_an_invalid_continuation_id_fails_the_attempt(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        malformed = env.malformed_id()
        errors: list[BaseException] = []

        async def start(attempt: Attempt[Start]) -> None:
            if attempt.number == 1:
                try:
                    await attempt.complete(Double(Num(1), id=malformed))
                except InvalidJobIdError as exc:
                    errors.append(exc)
                    raise
            await attempt.complete(Double(Num(1)))

        worker = env.worker({Start: start, Double: _double, Describe: _describe})
        chain = await env.start_one(Start(Num(0)))
        async with worker:
            assert (await env.wait(chain)).value == 2
        assert len(errors) == 1

    async def test_a_continuation_can_be_scheduled_later(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)

        async def start(attempt: Attempt[Start]) -> Double:
            return Double(Num(1), schedule=Schedule(after=0.5))

        worker = env.worker({Start: start, Double: _double, Describe: _describe})
        chain = await env.start_one(Start(Num(0)))
        async with worker:
            await env.wait(chain)
        first, second = (await env.client.list_chain_jobs(chain.id)).items
        assert first.completed_at is not None and second.completed_at is not None
        assert second.last_attempt_at is not None
        # Due half a second after the continuation was written (one statement reads the clock for
        # both), and not run before it was due. Times of other statements are not compared: on a
        # busy machine the completion may be written well after the continuation.
        delay = (second.scheduled_at - second.created_at).total_seconds()
        assert delay == pytest.approx(0.5, abs=0.002), (
            f"continuation due {delay:.3f} s after it was written"
        )
        assert second.last_attempt_at >= second.scheduled_at, (
            "the continuation ran before it was due"
        )
        assert second.created_at >= first.created_at

    async def test_a_continuation_can_wait_for_chains_started_in_the_same_transaction(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)

        async def gather(attempt: Attempt[Gather]) -> None:
            async def fan_out(ctx: TxContext[Any]) -> Collect:
                leaves = await ctx.start_chains(
                    [Leaf(Num(i)) for i in range(1, attempt.input.value + 1)]
                )
                return Collect(Num(0), blockers=tuple(leaves))

            await attempt.complete(fan_out)

        async def leaf(attempt: Attempt[Leaf]) -> Num:
            return Num(attempt.input.value * 10)

        async def collect(attempt: Attempt[Collect]) -> Num:
            return Num(sum(b.output.value for b in attempt.blockers))

        worker = env.worker({Gather: gather, Leaf: leaf, Collect: collect}, concurrency=3)
        chain = await env.start_one(Gather(Num(4)))
        async with worker:
            assert (await env.wait(chain)).value == 100

    @pytest.mark.parametrize("mode", ["atomic", "staged"])
    async def test_chains_started_inside_a_handler_are_independent(
        self, queuert_env: MakeEnv, mode: str
    ) -> None:
        env = await queuert_env(job_types=ALL)
        started: list[str] = []

        async def double(attempt: Attempt[Double]) -> Num:
            return Num(attempt.input.value * 2)

        async def start(attempt: Attempt[Start]) -> None:
            await attempt.prepare(mode)  # type: ignore[arg-type]

            async def complete(ctx: TxContext[Any]) -> Double:
                leaf = await ctx.start_chain(Leaf(Num(5)))
                started.append(leaf.id)
                return Double(Num(1))

            await attempt.complete(complete)

        async def leaf(attempt: Attempt[Leaf]) -> Num:
            return Num(attempt.input.value)

        worker = env.worker({Start: start, Double: double, Describe: _describe, Leaf: leaf})
        chain = await env.start_one(Start(Num(0)))
        async with worker:
            await env.wait(chain)
            other = await env.client.get_chain(started[0])
            assert other is not None and other.type_name == "b_leaf"
            assert (
                await env.client.wait_for_chain(other, timeout=10, poll_interval=0.05)
            ).value == 5
