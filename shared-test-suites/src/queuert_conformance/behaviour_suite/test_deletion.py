"""Deleting chains, and waiting for chains."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from queuert import (
    Attempt,
    BlockerReferenceError,
    Chain,
    ChainNotFoundError,
    JobTypeMismatchError,
    NoopNotifyAdapter,
    TransactionHooksRequiredError,
    WaitChainTimeoutError,
)

from queuert_conformance.behaviour_suite.jobs import (
    ALL,
    Collect,
    Echo,
    Gather,
    Join,
    Leaf,
    Num,
    Step,
    Text,
)
from queuert_conformance.behaviour_suite.support import (
    MakeEnv,
    eventually,
    reason_a_running_handler_is_told,
)


class TestDeletion:
    async def test_delete_removes_every_job_of_the_chain(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)

        async def step(attempt: Attempt[Step]) -> Step | Num:
            n = attempt.input.value
            return Step(Num(n + 1)) if n < 2 else Num(n)

        chain, keep = await env.start(Step(Num(0)), Echo(Num(1)))
        async with env.worker({Step: step}):
            await env.wait(chain)
        async with env.client.transaction() as tx:
            (deleted,) = await env.client.delete_chains([chain], tx=tx)
        assert deleted.id == chain.id and deleted.outcome == "completed"
        assert await env.client.get_chain(chain.id) is None
        assert (await env.client.list_jobs(chain_ids=[chain.id])).items == []
        assert await env.client.get_chain(keep.id) is not None
        async with env.client.transaction() as tx:
            assert await env.client.delete_chains([env.unknown_id()], tx=tx) == []

    async def test_a_chain_something_waits_for_is_not_deleted(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        async with env.client.transaction() as tx:
            leaf = await env.client.start_chain(Leaf(Num(1)), tx=tx)
            join = await env.client.start_chain(Join(Text("j"), blockers=(leaf,)), tx=tx)
        async with env.client.transaction() as tx:
            with pytest.raises(BlockerReferenceError) as info:
                await env.client.delete_chains([leaf], tx=tx)
        assert [(r.chain_id, r.referenced_by_job_id) for r in info.value.references] == [
            (leaf.id, join.id)
        ]
        assert await env.client.get_chain(leaf.id) is not None
        async with env.client.transaction() as tx:
            deleted = await env.client.delete_chains([join, leaf], tx=tx)
        assert {c.id for c in deleted} == {leaf.id, join.id}

    async def test_cascade_follows_blockers_of_every_job_of_the_chain(
        self, queuert_env: MakeEnv
    ) -> None:
        """Blockers attached to a continuation are deleted too (the original only followed the first job)."""
        env = await queuert_env(job_types=ALL)

        async def gather(attempt: Attempt[Gather]) -> None:
            async def fan_out(ctx: object) -> Collect:
                leaves = await ctx.start_chains([Leaf(Num(1)), Leaf(Num(2))])  # type: ignore[attr-defined]
                return Collect(Num(0), blockers=tuple(leaves))

            await attempt.complete(fan_out)

        chain = await env.start_one(Gather(Num(2)))
        async with env.worker({Gather: gather}):

            async def continued() -> bool:
                job = await env.client.get_job(chain.id)
                return job is not None and job.status == "continued"

            await eventually(continued, what="the chain to continue")
        assert len((await env.client.list_chains(type_names=["b_leaf"])).items) == 2
        async with env.client.transaction() as tx:
            deleted = await env.client.delete_chains([chain], cascade=True, tx=tx)
        assert len(deleted) == 3
        assert (await env.client.list_chains()).items == []

    async def test_cascade_still_refuses_dependents_outside_the_set(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        async with env.client.transaction() as tx:
            leaf = await env.client.start_chain(Leaf(Num(1)), tx=tx)
            join_a = await env.client.start_chain(Join(Text("a"), blockers=(leaf,)), tx=tx)
            await env.client.start_chain(Join(Text("b"), blockers=(leaf,)), tx=tx)
        async with env.client.transaction() as tx:
            with pytest.raises(BlockerReferenceError):
                await env.client.delete_chains([join_a], cascade=True, tx=tx)
        assert len((await env.client.list_chains()).items) == 3

    async def test_a_running_job_of_a_deleted_chain_is_told(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)

        async def delete(chain: Chain[Any], tx: Any) -> None:
            await env.client.delete_chains([chain], tx=tx)

        assert await reason_a_running_handler_is_told(env, delete) == "not_found"

    async def test_deletion_needs_transaction_hooks(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        chain = await env.start_one(Echo(Num(0)))
        async with env.state.transaction() as tx:
            with pytest.raises(TransactionHooksRequiredError):
                await env.client.delete_chains([chain], tx=tx)
        async with env.client.hooks() as hooks, env.state.transaction() as tx:
            assert len(await env.client.delete_chains([chain], tx=tx, hooks=hooks)) == 1


class TestWaitForChain:
    async def test_returns_at_once_for_a_closed_chain(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        chain = await env.start_one(Echo(Num(5)))
        async with env.client.transaction() as tx:
            await env.client.complete_chain(chain, Echo, Num(6), tx=tx)
        assert (await env.client.wait_for_chain(chain.id, Echo, timeout=1)).value == 6

    async def test_errors(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        chain = await env.start_one(Echo(Num(5)))
        with pytest.raises(WaitChainTimeoutError) as timeout:
            await env.client.wait_for_chain(chain, timeout=0.2, poll_interval=0.05)
        assert timeout.value.chain_id == chain.id
        with pytest.raises(ChainNotFoundError):
            await env.client.wait_for_chain(env.unknown_id(), Echo, timeout=1)
        with pytest.raises(JobTypeMismatchError):
            await env.client.wait_for_chain(chain.id, Leaf, timeout=1)

    async def test_wakes_on_the_notification_before_the_poll(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        delivers = not isinstance(env.notify, NoopNotifyAdapter)
        chain = await env.start_one(Echo(Num(5)))
        loop = asyncio.get_running_loop()

        async def complete_soon() -> None:
            await asyncio.sleep(0.1)
            async with env.client.transaction() as tx:
                await env.client.complete_chain(chain, Echo, Num(8), tx=tx)

        started = loop.time()
        task = asyncio.ensure_future(complete_soon())
        # Without notifications only polling can find the result: then poll often.
        result = await env.client.wait_for_chain(
            chain, timeout=10, poll_interval=5 if delivers else 0.1
        )
        await task
        assert result.value == 8
        if delivers:
            assert loop.time() - started < 3, "woken by the notification, not by the 5 s poll"
