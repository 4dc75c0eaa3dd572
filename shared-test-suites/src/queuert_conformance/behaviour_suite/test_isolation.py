"""Isolated handlers on every adapter: a handler running in a process of its own completes or
continues its job through the store like any staged handler, and a process that dies fails only its
attempt, which is retried in a new process.

The handlers are module-level functions: their processes import them from this module by name.
"""

from __future__ import annotations

import os

from queuert import Attempt, HandlerCrashedError, IsolatedJob
from queuert.observability import AttemptFailed

from queuert_conformance.behaviour_suite.jobs import ALL, Double, Echo, Num, Start
from queuert_conformance.behaviour_suite.support import MakeEnv


def echo_after_a_crash(job: IsolatedJob[Echo]) -> Num:
    if job.number == 1:
        os._exit(9)  # the first attempt's process dies without answering
    return Num(job.input.value * 100)


def start_in_a_process(job: IsolatedJob[Start]) -> Double:
    return Double(Num(job.input.value + 1))


def start_urgently_in_a_process(job: IsolatedJob[Start]) -> Double:
    return Double(Num(job.input.value + 1), priority=7)


class TestIsolatedHandlers:
    async def test_a_continuation_from_a_process_keeps_the_priority_it_sets(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        worker = env.worker()
        worker.isolated(Start, hard_timeout=30, processes=1)(start_urgently_in_a_process)

        @worker.handler(Double)
        async def double(attempt: Attempt[Double]) -> Num:
            return Num(attempt.input.value * 2)

        chain = await env.start_one(Start(Num(1), priority=-1))
        async with worker:
            assert await env.wait(chain, timeout=30) == Num(4)
        jobs = await env.client.list_chain_jobs(chain.id)
        assert [job.priority for job in jobs.items] == [-1, 7]

    async def test_an_isolated_handler_continues_its_chain_through_the_store(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        worker = env.worker()
        worker.isolated(Start, hard_timeout=30, processes=1)(start_in_a_process)

        @worker.handler(Double)
        async def double(attempt: Attempt[Double]) -> Num:
            return Num(attempt.input.value * 2)

        chain = await env.start_one(Start(Num(20)))
        async with worker:
            assert await env.wait(chain, timeout=30) == Num(42)
        jobs = await env.client.list_chain_jobs(chain.id)
        assert [job.status for job in jobs.items] == ["continued", "completed"]

    async def test_a_process_that_dies_fails_only_its_attempt_and_the_job_runs_once_more(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        worker = env.worker()
        worker.isolated(Echo, hard_timeout=30, processes=1)(echo_after_a_crash)
        chain = await env.start_one(Echo(Num(3)))
        async with worker:
            assert await env.wait(chain, timeout=30) == Num(300)
        (failed,) = env.events.of(AttemptFailed)
        assert failed.error_type == HandlerCrashedError.__name__
        assert "exited with code 9" in failed.error
        (job,) = (await env.client.list_chain_jobs(chain.id)).items
        assert job.attempt == 2 and job.status == "completed"
