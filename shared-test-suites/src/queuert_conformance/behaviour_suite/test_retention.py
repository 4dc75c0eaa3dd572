"""Retention, on every adapter: chains closed for longer than ``closed_for`` are deleted by the
workers' retention runs; open chains, chains closed more recently, and closed chains that an open
chain still waits for are kept."""

from __future__ import annotations

from queuert import Attempt, Retention
from queuert.observability import ChainsExpired
from queuert.retention import RunRetention

from queuert_conformance.behaviour_suite.jobs import ALL, Echo, Join, Leaf, Num, Other, Text
from queuert_conformance.behaviour_suite.support import Env, MakeEnv, eventually


async def _echo(attempt: Attempt[Echo]) -> Num:
    return Num(attempt.input.value)


async def _leaf(attempt: Attempt[Leaf]) -> Num:
    return Num(attempt.input.value)


async def _finished_runs(env: Env) -> list[tuple[int, int]]:
    """(deleted, skipped) of every completed retention run."""
    chains = (await env.client.list_chains(type_names=[RunRetention], limit=100)).items
    return [(c.output.deleted, c.output.skipped) for c in chains if c.outcome == "completed"]


class TestRetention:
    async def test_expired_chains_are_deleted_and_the_rest_kept(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=[*ALL, RunRetention])
        done, still_open = await env.start(Echo(Num(1)), Other(Num(2)))
        (leaf,) = await env.start(Leaf(Num(3)))
        (waiting,) = await env.start(Join(Text("waits"), blockers=(leaf,)))
        async with env.worker({Echo: _echo, Leaf: _leaf}):
            await env.wait(done)
            await env.wait(leaf)
        async with env.worker({Echo: _echo}, retention=Retention(closed_for=0, every=0.2)):

            async def expired() -> bool:
                return await env.client.get_chain(done.id) is None

            await eventually(expired, timeout=15, what="the closed chain to be deleted")

            async def skipped_the_blocker() -> bool:
                return any(skipped for _, skipped in await _finished_runs(env))

            await eventually(skipped_the_blocker, timeout=15, what="a run to skip the blocker")
        assert await env.client.get_chain(still_open.id) is not None, "an open chain was deleted"
        assert await env.client.get_chain(leaf.id) is not None, (
            "a closed chain that an open chain waits for was deleted"
        )
        assert await env.client.get_chain(waiting.id) is not None
        events = env.events.of(ChainsExpired)
        assert sum(e.deleted for e in events) >= 1

    async def test_chains_closed_more_recently_are_kept(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=[*ALL, RunRetention])
        (done,) = await env.start(Echo(Num(1)))
        async with env.worker({Echo: _echo}, retention=Retention(closed_for=3600, every=0.2)):
            await env.wait(done)

            async def a_run_finished() -> bool:
                return bool(await _finished_runs(env))

            await eventually(a_run_finished, timeout=15, what="a retention run")
        assert await env.client.get_chain(done.id) is not None
        assert all(deleted == 0 for deleted, _ in await _finished_runs(env))
