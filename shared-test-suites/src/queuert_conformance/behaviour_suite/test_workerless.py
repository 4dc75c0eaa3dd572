"""Workerless completion (approvals, webhooks) and cancellation."""

from __future__ import annotations

from typing import Any

import pytest
from queuert import (
    Attempt,
    Chain,
    ChainCancelledError,
    ChainNotFoundError,
    JobAlreadyCompletedError,
    JobTypeMismatchError,
    JobTypeValidationError,
    TransactionHooksRequiredError,
    WorkerlessCompletion,
)

from queuert_conformance.behaviour_suite.jobs import (
    ALL,
    Describe,
    Double,
    Echo,
    Join,
    Leaf,
    Num,
    Start,
    Text,
)
from queuert_conformance.behaviour_suite.support import MakeEnv, reason_a_running_handler_is_told


class TestWorkerlessCompletion:
    async def test_complete_a_chain_without_a_worker(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        chain = await env.start_one(Echo(Num(1)))
        async with env.client.transaction() as tx:
            done = await env.client.complete_chain(chain, Echo, Num(42), tx=tx)
        assert done.is_closed and done.outcome == "completed"
        assert (await env.wait(chain)).value == 42
        assert done.tail.completed_by is None

    async def test_the_callback_sees_the_job_and_can_continue_the_chain(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        chain = await env.start_one(Start(Num(5)))

        async def approve(completion: WorkerlessCompletion[Any, Num]) -> Double:
            assert completion.job.type_name == "b_start"
            return Double(Num(completion.input.value))

        async with env.client.transaction() as tx:
            partly = await env.client.complete_chain(chain.id, Start, approve, tx=tx)
        assert partly.status == "open" and partly.tail.type_name == "b_double"

        async def double(attempt: Attempt[Double]) -> Num:
            return Num(attempt.input.value * 2)

        async def describe(attempt: Attempt[Describe]) -> Text:
            return Text("")

        async with env.worker({Double: double, Describe: describe}):
            assert (await env.wait(chain)).value == 10

    async def test_errors(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        chain = await env.start_one(Echo(Num(1)))
        async with env.client.transaction() as tx:
            with pytest.raises(ChainNotFoundError):
                await env.client.complete_chain(env.unknown_id(), Echo, Num(1), tx=tx)
            with pytest.raises(JobTypeMismatchError):
                await env.client.complete_chain(chain, Leaf, Num(1), tx=tx)
            with pytest.raises(JobTypeValidationError) as invalid:
                await env.client.complete_chain(chain, Echo, Text("wrong"), tx=tx)  # type: ignore[arg-type]
            assert invalid.value.code == "invalid_output"
            await env.client.complete_chain(chain, Echo, Num(1), tx=tx)
            with pytest.raises(JobAlreadyCompletedError):
                await env.client.complete_chain(chain, Echo, Num(2), tx=tx)
        with pytest.raises(TransactionHooksRequiredError):
            async with env.state.transaction() as raw_tx:
                await env.client.complete_chain(chain, Echo, Num(1), tx=raw_tx)

    async def test_a_running_worker_loses_the_job_and_its_completion_is_refused(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)

        async def complete(chain: Chain[Any], tx: Any) -> None:
            await env.client.complete_chain(chain, Echo, Num(99), tx=tx)

        assert await reason_a_running_handler_is_told(env, complete) == "already_completed"
        (chain,) = (await env.client.list_chains(type_names=["b_echo"])).items
        assert (await env.wait(chain)).value == 99


class TestCancel:
    async def test_cancel_closes_the_chain_and_releases_dependents(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        async with env.client.transaction() as tx:
            leaf = await env.client.start_chain(Leaf(Num(1)), tx=tx)
            join = await env.client.start_chain(Join(Text("j"), blockers=(leaf,)), tx=tx)
        async with env.client.transaction() as tx:
            cancelled = await env.client.cancel_chain(leaf, tx=tx)
        assert cancelled.outcome == "cancelled" and cancelled.tail.status == "cancelled"
        with pytest.raises(ChainCancelledError):
            await env.wait(leaf)
        async with env.client.transaction() as tx:
            with pytest.raises(JobAlreadyCompletedError):
                await env.client.cancel_chain(leaf, tx=tx)
        ran = False

        async def join_handler(attempt: Attempt[Join]) -> Num:
            nonlocal ran
            ran = True
            return Num(0)

        async with env.worker({Join: join_handler}):
            closed = await env.wait_closed(join)
        assert closed.outcome == "failed", "a strict dependent of a cancelled chain fails"
        assert not ran

    async def test_cancel_tells_the_running_attempt(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)

        async def cancel(chain: Chain[Any], tx: Any) -> None:
            await env.client.cancel_chain(chain, tx=tx)

        assert await reason_a_running_handler_is_told(env, cancel) == "cancelled"
