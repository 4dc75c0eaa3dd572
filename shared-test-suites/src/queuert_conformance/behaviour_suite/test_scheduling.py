"""Scheduling, triggering and deduplication."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from queuert import (
    Attempt,
    Deduplication,
    JobNotFoundError,
    JobNotTriggerableError,
    Schedule,
)

from queuert_conformance.applicability import require_capability
from queuert_conformance.behaviour_suite.jobs import ALL, Echo, Join, Leaf, Num, Other, Step, Text
from queuert_conformance.behaviour_suite.support import MakeEnv, eventually


async def _echo(attempt: Attempt[Echo]) -> Num:
    return Num(attempt.input.value)


class TestScheduling:
    @pytest.mark.parametrize("how", ["after", "at"])
    async def test_a_chain_can_start_later(self, queuert_env: MakeEnv, how: str) -> None:
        env = await queuert_env(job_types=ALL)
        before = datetime.now(timezone.utc)
        schedule = (
            Schedule(after=0.4) if how == "after" else Schedule(at=before + timedelta(seconds=0.4))
        )
        chain = await env.start_one(Echo(Num(1), schedule=schedule))
        assert chain.root.status == "scheduled"
        async with env.worker({Echo: _echo}):
            await env.wait(chain)
        job = await env.client.get_job(chain.id)
        assert job is not None and job.completed_at is not None
        assert (job.completed_at - before).total_seconds() >= 0.35

    async def test_a_time_in_the_past_means_now(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        long_ago = datetime(2001, 1, 1, tzinfo=timezone.utc)
        chain = await env.start_one(Echo(Num(1), schedule=Schedule(at=long_ago)))
        assert chain.root.status == "ready"
        assert chain.root.scheduled_at >= chain.root.created_at

    async def test_trigger_makes_a_scheduled_job_ready_now(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        later, other = await env.start(
            Echo(Num(1), schedule=Schedule(after=3600)),
            Echo(Num(2), schedule=Schedule(after=3600)),
        )
        async with env.client.transaction() as tx:
            (triggered,) = await env.client.trigger_jobs([later.id], tx=tx)
        assert triggered.status == "ready"
        async with env.worker({Echo: _echo}):
            assert (await env.wait(later)).value == 1
        job = await env.client.get_job(other.id)
        assert job is not None and job.status == "scheduled"

    async def test_trigger_is_all_or_nothing(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        async with env.client.transaction() as tx:
            leaf = await env.client.start_chain(Leaf(Num(1), schedule=Schedule(after=3600)), tx=tx)
            join = await env.client.start_chain(Join(Text("j"), blockers=(leaf,)), tx=tx)
        async with env.client.transaction() as tx:
            with pytest.raises(JobNotFoundError):
                await env.client.trigger_jobs([leaf.id, env.unknown_id()], tx=tx)
            with pytest.raises(JobNotTriggerableError) as info:
                await env.client.trigger_jobs([leaf.id, join.id], tx=tx)
        assert info.value.status == "blocked"
        job = await env.client.get_job(leaf.id)
        assert job is not None and job.status == "scheduled", "nothing was triggered"

    async def test_a_recurring_chain_schedules_its_next_run_with_deduplication(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        runs: list[int] = []

        async def step(attempt: Attempt[Step]) -> None:
            n = attempt.input.value
            runs.append(n)
            if n < 3:

                async def next_run(ctx: object) -> Num:
                    await env.client.start_chain(
                        Step(
                            Num(n + 1),
                            schedule=Schedule(after=0.05),
                            deduplication=Deduplication(
                                "tick", exclude_chain_ids=[attempt.job.chain_id]
                            ),
                        ),
                        tx=ctx.tx,  # type: ignore[attr-defined]
                    )
                    return Num(n)

                await attempt.complete(next_run)
            else:
                await attempt.complete(Num(n))

        first = await env.start_one(Step(Num(1), deduplication=Deduplication("tick")))
        # a second registration of the same recurring work is deduplicated
        again = await env.start_one(Step(Num(1), deduplication=Deduplication("tick")))
        assert again.deduplicated and again.id == first.id
        async with env.worker({Step: step}):
            await eventually(lambda: len(runs) >= 3, what="three runs")
        assert runs == [1, 2, 3]


class TestStartDeduplication:
    async def test_same_key_returns_the_open_chain(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        first = await env.start_one(Echo(Num(1), deduplication=Deduplication("k")))
        second = await env.start_one(Echo(Num(2), deduplication=Deduplication("k")))
        assert not first.deduplicated and second.deduplicated
        assert second.id == first.id and second.input.value == 1
        other_type = await env.start_one(Other(Num(3), deduplication=Deduplication("k")))
        assert not other_type.deduplicated, "keys are scoped by chain type"

    async def test_scope_open_starts_a_new_chain_once_the_old_one_closed(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        first = await env.start_one(Echo(Num(1), deduplication=Deduplication("k")))
        async with env.worker({Echo: _echo}):
            await env.wait(first)
        second = await env.start_one(Echo(Num(2), deduplication=Deduplication("k")))
        assert not second.deduplicated
        third = await env.start_one(Echo(Num(3), deduplication=Deduplication("k", scope="any")))
        assert third.deduplicated and third.id == second.id, "the newest match wins"

    async def test_scope_any_with_a_window(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        first = await env.start_one(Echo(Num(1), deduplication=Deduplication("w", scope="any")))
        async with env.worker({Echo: _echo}):
            await env.wait(first)
        inside = await env.start_one(
            Echo(
                Num(2), deduplication=Deduplication("w", scope="any", window=timedelta(seconds=30))
            )
        )
        assert inside.deduplicated
        await asyncio.sleep(0.3)
        outside = await env.start_one(
            Echo(
                Num(3), deduplication=Deduplication("w", scope="any", window=timedelta(seconds=0.2))
            )
        )
        assert not outside.deduplicated

    async def test_a_chain_whose_first_job_continued_is_still_open(
        self, queuert_env: MakeEnv
    ) -> None:
        """Deduplication looks at the chain's status, not at its first job: a chain whose first job
        continued is still open and still deduplicates."""
        env = await queuert_env(job_types=ALL)
        hold = asyncio.Event()

        async def step(attempt: Attempt[Step]) -> None:
            if attempt.input.value == 0:
                await attempt.complete(Step(Num(1)))
            else:
                await hold.wait()
                await attempt.complete(Num(1))

        first = await env.start_one(Step(Num(0), deduplication=Deduplication("chain")))
        async with env.worker({Step: step}):

            async def first_job_continued() -> bool:
                job = await env.client.get_job(first.id)
                return job is not None and job.status == "continued"

            await eventually(first_job_continued, what="the first job to continue")
            again = await env.start_one(Step(Num(0), deduplication=Deduplication("chain")))
            assert again.deduplicated and again.id == first.id
            hold.set()
            await env.wait(first)

    async def test_deduplication_inside_one_batch(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        a, b, c = await env.start(
            Echo(Num(1), deduplication=Deduplication("b")),
            Echo(Num(2), deduplication=Deduplication("b")),
            Echo(Num(3)),
        )
        assert not a.deduplicated and b.deduplicated and b.id == a.id and not c.deduplicated

    async def test_concurrent_starts_with_one_key_make_one_chain(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        require_capability(env.capabilities, "concurrent_transactions")
        other = env.another_client()

        async def start(client: object, value: int) -> str:
            async with client.transaction() as tx:  # type: ignore[attr-defined]
                chain = await client.start_chain(  # type: ignore[attr-defined]
                    Echo(Num(value), deduplication=Deduplication("race")), tx=tx
                )
                await asyncio.sleep(0.01)
                return str(chain.id)

        ids = await asyncio.gather(*(start(env.client if i % 2 else other, i) for i in range(6)))
        assert len(set(ids)) == 1
        page = await env.client.list_chains(type_names=["b_echo"])
        assert len(page.items) == 1
