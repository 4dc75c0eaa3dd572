"""Blockers: fan-out / fan-in, fixed slots, already-closed blockers, shared blockers, fairness."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from queuert import Attempt, JobTypeValidationError

from queuert_conformance.behaviour_suite.jobs import ALL, Echo, Join, Leaf, Num, Other, Pair, Text
from queuert_conformance.behaviour_suite.support import Env, MakeEnv


async def _leaf(attempt: Attempt[Leaf]) -> Num:
    return Num(attempt.input.value)


async def _join(attempt: Attempt[Join]) -> Num:
    return Num(sum(chain.output.value for chain in attempt.blockers))


class _RolledBack(Exception):
    def __init__(self, at: datetime) -> None:
        super().__init__()
        self.at = at


async def _store_clock(env: Env) -> datetime:
    """The store's clock: the creation time it gives a chain started in a transaction that is then
    rolled back (nothing is written)."""
    try:
        async with env.client.transaction() as tx:
            probe = await env.client.start_chain(Other(Num(0)), tx=tx)
            raise _RolledBack(probe.root.created_at)
    except _RolledBack as rolled_back:
        return rolled_back.at


async def _until_the_store_clock_passes(env: Env, moment: datetime, timeout: float = 5.0) -> None:
    """Return once the store's clock reads later than ``moment`` (re-read every millisecond)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await _store_clock(env) <= moment:
        assert loop.time() < deadline, f"the store's clock did not pass {moment} in {timeout}s"
        await asyncio.sleep(0.001)


class TestFanOutFanIn:
    async def test_a_job_waits_for_all_its_blocker_chains(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        async with env.client.transaction() as tx:
            leaves = await env.client.start_chains([Leaf(Num(i)) for i in range(1, 6)], tx=tx)
            join = await env.client.start_chain(Join(Text("sum"), blockers=tuple(leaves)), tx=tx)
        assert (await env.client.get_job(join.id)).status == "blocked"  # type: ignore[union-attr]
        worker = env.worker({Leaf: _leaf, Join: _join}, concurrency=3)
        async with worker:
            assert (await env.wait(join)).value == 15
        blockers = await env.client.get_job_blockers(join.id)
        assert [b.id for b in blockers] == [leaf.id for leaf in leaves]
        waiting = (await env.client.list_blocked_jobs(leaves[0].id)).items
        assert [j.id for j in waiting] == [join.id]

    async def test_fixed_slots_give_typed_outputs_in_order(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)

        async def echo(attempt: Attempt[Echo]) -> Num:
            return Num(attempt.input.value + 100)

        async def pair(attempt: Attempt[Pair]) -> Text:
            leaf, echoed = attempt.blockers
            return Text(f"{leaf.output.value}/{echoed.output.value}")

        async with env.client.transaction() as tx:
            leaf = await env.client.start_chain(Leaf(Num(1)), tx=tx)
            echoed = await env.client.start_chain(Echo(Num(2)), tx=tx)
            chain = await env.client.start_chain(Pair(Text("p"), blockers=(leaf, echoed)), tx=tx)
        async with env.worker({Leaf: _leaf, Echo: echo, Pair: pair}, concurrency=2):
            assert (await env.wait(chain)).text == "1/102"

    async def test_blockers_that_are_already_closed_do_not_block(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        leaf = await env.start_one(Leaf(Num(7)))
        async with env.worker({Leaf: _leaf}):
            await env.wait(leaf)
        leaf = await env.client.get_chain(leaf.id, Leaf)  # type: ignore[assignment]
        join = await env.start_one(Join(Text("late"), blockers=(leaf,)))
        assert (await env.client.get_job(join.id)).status == "ready"  # type: ignore[union-attr]
        async with env.worker({Join: _join}):
            assert (await env.wait(join)).value == 7

    async def test_one_blocker_chain_can_release_several_jobs(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        async with env.client.transaction() as tx:
            leaf = await env.client.start_chain(Leaf(Num(3)), tx=tx)
            joins = await env.client.start_chains(
                [Join(Text(str(i)), blockers=(leaf,)) for i in range(3)], tx=tx
            )
        async with env.worker({Leaf: _leaf, Join: _join}, concurrency=2):
            for join in joins:
                assert (await env.wait(join)).value == 3

    async def test_blockers_are_checked_against_the_declaration(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        echo = await env.start_one(Echo(Num(1)))
        leaf = await env.start_one(Leaf(Num(1)))
        async with env.client.transaction() as tx:
            with pytest.raises(JobTypeValidationError) as wrong_type:
                await env.client.start_chain(Join(Text("x"), blockers=(echo,)), tx=tx)
            with pytest.raises(JobTypeValidationError) as missing:
                await env.client.start_chain(Pair(Text("x"), blockers=(leaf,)), tx=tx)  # type: ignore[arg-type]
            with pytest.raises(JobTypeValidationError) as undeclared:
                await env.client.start_chain(Leaf(Num(1), blockers=(leaf,)), tx=tx)  # type: ignore[arg-type]
        assert (
            wrong_type.value.code
            == missing.value.code
            == undeclared.value.code
            == "invalid_blockers"
        )
        assert (await env.client.list_chains()).items.__len__() == 2, "nothing was written"

    async def test_a_long_blocked_job_does_not_jump_ahead_of_ready_work(
        self, queuert_env: MakeEnv
    ) -> None:
        """When a job is unblocked its scheduled time is raised to now, so it queues behind jobs that
        became ready before it (FIFO fairness), although it was created first."""
        env = await queuert_env(job_types=ALL)
        order: list[str] = []
        async with env.client.transaction() as tx:
            leaf = await env.client.start_chain(Leaf(Num(1)), tx=tx)
            join = await env.client.start_chain(Join(Text("j"), blockers=(leaf,)), tx=tx)
        # Strictly later timestamps, whatever the resolution of the store's clock: the echoes
        # become ready after the join was created, and the leaf closes after the echoes are ready.
        await _until_the_store_clock_passes(env, join.root.created_at)
        echoes = await env.start(*(Echo(Num(i)) for i in range(3)))
        await _until_the_store_clock_passes(env, max(e.root.scheduled_at for e in echoes))
        async with env.worker({Leaf: _leaf}):
            await env.wait(leaf)
        stored = await env.client.get_job(join.id)
        assert stored is not None and stored.status == "ready"
        assert all(stored.scheduled_at > e.root.scheduled_at for e in echoes)

        async def echo(attempt: Attempt[Echo]) -> Num:
            order.append(f"echo{attempt.input.value}")
            return Num(0)

        async def join_handler(attempt: Attempt[Join]) -> Num:
            order.append("join")
            return Num(0)

        async with env.worker({Echo: echo, Join: join_handler}, concurrency=1):
            for chain in [*echoes, join]:
                await env.wait(chain)
        # Claims go oldest scheduled_at first, ties by id: the echoes of one start share a time when
        # the store's clock is per transaction, and then only ids that grow in creation order (as
        # UUIDv7 do) keep them in start order.
        by_claim_order = sorted(range(3), key=lambda i: (echoes[i].root.scheduled_at, echoes[i].id))
        assert order == [*(f"echo{i}" for i in by_claim_order), "join"]
