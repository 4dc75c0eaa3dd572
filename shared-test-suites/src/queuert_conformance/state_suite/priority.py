"""Priorities: stored with each job, and the first key of the claim order."""

from __future__ import annotations

from datetime import timedelta

from queuert.job_types import MAX_PRIORITY, MIN_PRIORITY
from queuert.schedule import Schedule

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import TYPE_A, TYPE_B, Ops, ids

__all__ = ["TestPriorities"]


class TestPriorities:
    async def test_priority_round_trips_at_both_ends_of_its_range(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        for priority in (MIN_PRIORITY, -1, 0, 7, MAX_PRIORITY):
            job = await ops.start(TYPE_A, priority=priority)
            assert job.priority == priority, "create_jobs returns the stored priority"
            assert (await ops.job(job.id)).priority == priority, "the priority is stored"

    async def test_a_job_without_priority_has_zero(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        job = await ops.start(TYPE_A)
        assert job.priority == 0
        assert (await ops.job(job.id)).priority == 0

    async def test_higher_priority_is_claimed_first_then_oldest(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        low = await ops.start(TYPE_A, {"n": "low"}, priority=-5)
        normal_1 = await ops.start(TYPE_A, {"n": "normal 1"})
        high_1 = await ops.start(TYPE_A, {"n": "high 1"}, priority=10)
        normal_2 = await ops.start(TYPE_A, {"n": "normal 2"})
        high_2 = await ops.start(TYPE_A, {"n": "high 2"}, priority=10)
        result = await ops.claim(TYPE_A, limit=5)
        assert ids(result.jobs) == ids([high_1, high_2, normal_1, normal_2, low]), (
            "claimed by priority (highest first), then by scheduled_at"
        )

    async def test_priority_orders_across_types(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        a = await ops.start(TYPE_A)
        b = await ops.start(TYPE_B, priority=1)
        result = await ops.claim(TYPE_A, TYPE_B, limit=1)
        assert ids(result.jobs) == [b.id], "the higher priority wins over the older job"
        assert result.has_more is True
        result = await ops.claim(TYPE_A, TYPE_B, limit=1)
        assert ids(result.jobs) == [a.id]

    async def test_a_limited_claim_takes_the_highest_priorities(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        for i in range(4):
            await ops.start(TYPE_A, {"i": i})
        urgent = [await ops.start(TYPE_A, {"urgent": i}, priority=3) for i in range(2)]
        result = await ops.claim(TYPE_A, limit=2)
        assert ids(result.jobs) == ids(urgent), "the newest jobs, but the most urgent ones"
        assert result.has_more is True

    async def test_a_scheduled_high_priority_job_waits_for_its_time(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        await ops.start(TYPE_A, priority=100, schedule=Schedule(after=timedelta(hours=1)))
        ready = await ops.start(TYPE_A)
        result = await ops.claim(TYPE_A, limit=5)
        assert ids(result.jobs) == [ready.id], "priority orders ready jobs only"
        assert result.has_more is False

    async def test_a_continuation_stores_its_own_priority(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        first = await ops.start(TYPE_A, priority=4)
        (same,) = await ops.create(ops.next_job(first, TYPE_B, priority=4))
        (other,) = await ops.create(ops.next_job(same, TYPE_B, priority=-2))
        assert (await ops.job(same.id)).priority == 4
        assert (await ops.job(other.id)).priority == -2

    async def test_reaping_and_rescheduling_keep_the_priority(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A, priority=9)
        await ops.claim_one(job.id, lease=timedelta(0))
        (reaped,) = await adapter.reap_expired_leases([TYPE_A], limit=10)
        assert reaped.priority == 9
        await ops.claim_one(job.id)
        again = await adapter.reschedule_job(job.id, schedule=None, error="retry")
        assert again.priority == 9
        await ops.start(TYPE_A)
        result = await ops.claim(TYPE_A, limit=1)
        assert ids(result.jobs) == [job.id], "a retried job keeps its place by priority"
