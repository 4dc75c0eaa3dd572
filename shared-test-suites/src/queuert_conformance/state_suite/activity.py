"""get_job_activity: counts by type and status, closings per time slice, workers that closed jobs;
and the deduplication-key filter of list_chains that the dashboard's search uses."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from queuert.schedule import Deduplication, Schedule
from queuert.state import ChainFilter, JobActivity

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    HOUR,
    OTHER_WORKER,
    TOLERANCE,
    TYPE_A,
    TYPE_B,
    TYPE_C,
    WORKER,
    Ops,
    ids,
    utcnow,
)

__all__ = ["TestJobActivity", "TestListChainsByDeduplicationKey"]


def counted(activity: JobActivity) -> dict[tuple[str, str], int]:
    return {(c.type_name, c.status): c.count for c in activity.counts}


class TestJobActivity:
    async def test_empty_store(self, queuert_state_harness: StateHarness) -> None:
        adapter = queuert_state_harness.adapter
        activity = await adapter.get_job_activity(window=HOUR, buckets=6)
        assert activity.counts == [] and activity.workers == []
        assert abs(activity.now - utcnow()) < TOLERANCE
        assert activity.since == activity.now - HOUR
        assert [b.start for b in activity.buckets] == [
            activity.since + timedelta(minutes=10) * i for i in range(6)
        ]
        assert all(b.completed == 0 and b.failed == 0 for b in activity.buckets)

    async def test_counts_every_status_by_type(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        await ops.start(TYPE_A)  # ready
        await ops.start(TYPE_A, schedule=Schedule(after=HOUR))  # scheduled
        running = await ops.start(TYPE_B)
        await ops.claim_one(running.id)
        blocker = await ops.start(TYPE_C)  # ready, then closed below
        await ops.start_blocked(TYPE_A, [blocker.id])  # blocked
        done = await ops.start(TYPE_B)
        await ops.close_job(done.id, worker_id=WORKER, output=1)
        failed = await ops.start(TYPE_B)
        await ops.close_job(failed.id, "failed", worker_id=OTHER_WORKER, error="boom")
        cancelled = await ops.start(TYPE_C)
        await ops.close_job(cancelled.id, "cancelled")
        first = await ops.start(TYPE_A)
        await ops.continue_with(first, TYPE_B, worker_id=WORKER)  # continued, then ready
        activity = await adapter.get_job_activity(window=HOUR, buckets=4)
        assert counted(activity) == {
            (TYPE_A, "ready"): 1,
            (TYPE_A, "scheduled"): 1,
            (TYPE_A, "blocked"): 1,
            (TYPE_A, "continued"): 1,
            (TYPE_B, "running"): 1,
            (TYPE_B, "completed"): 1,
            (TYPE_B, "failed"): 1,
            (TYPE_B, "ready"): 1,
            (TYPE_C, "ready"): 1,
            (TYPE_C, "cancelled"): 1,
        }
        assert [(c.type_name, c.status) for c in activity.counts] == sorted(counted(activity))
        assert [(w.worker_id, w.closed) for w in activity.workers] == sorted(
            [(WORKER, 2), (OTHER_WORKER, 1)]
        )
        for worker in activity.workers:
            assert activity.since <= worker.last_closed_at <= activity.now

    async def test_closings_fall_in_the_slice_of_their_time(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        for _ in range(3):
            job = await ops.start(TYPE_A)
            await ops.close_job(job.id, worker_id=WORKER)
        continued = await ops.start(TYPE_A)
        await ops.continue_with(continued, TYPE_A)
        for _ in range(2):
            job = await ops.start(TYPE_B)
            await ops.close_job(job.id, "failed", error="x")
        cancelled = await ops.start(TYPE_B)
        await ops.close_job(cancelled.id, "cancelled")
        activity = await adapter.get_job_activity(window=timedelta(days=1), buckets=24)
        assert len(activity.buckets) == 24
        # every closing happened within the last hour: all in the last slice
        assert [(b.completed, b.failed) for b in activity.buckets] == [(0, 0)] * 23 + [(4, 2)]

    async def test_jobs_closed_before_the_window_are_left_out(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        old = await ops.start(TYPE_A)
        closed = (await ops.close_job(old.id, worker_id=WORKER)).job
        assert closed.completed_at is not None
        open_job = await ops.start(TYPE_A, schedule=Schedule(after=HOUR))
        # a window that starts after the closing: half the time that has passed since it
        activity = await adapter.get_job_activity(window=HOUR, buckets=1)
        while activity.now <= closed.completed_at:
            await asyncio.sleep(0)
            activity = await adapter.get_job_activity(window=HOUR, buckets=1)
        window = (activity.now - closed.completed_at) / 2
        later = await adapter.get_job_activity(window=window, buckets=3)
        assert counted(later) == {(TYPE_A, "scheduled"): 1}, open_job.id
        assert later.workers == []
        assert all(b.completed == 0 for b in later.buckets)
        assert counted(activity) == {(TYPE_A, "completed"): 1, (TYPE_A, "scheduled"): 1}

    async def test_reads_inside_a_transaction(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with adapter.transaction() as tx:
            await ops.start(TYPE_A, tx=tx)
            inside = await adapter.get_job_activity(window=HOUR, buckets=2, tx=tx)
        assert counted(inside) == {(TYPE_A, "ready"): 1}


class TestListChainsByDeduplicationKey:
    async def test_matches_the_first_jobs_key(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        one = await ops.start(TYPE_A, deduplication=Deduplication("order-1"))
        two = await ops.start(TYPE_B, deduplication=Deduplication("order-2"))
        await ops.continue_with(two, TYPE_C)
        plain = await ops.start(TYPE_A)

        async def listed(keys: list[str]) -> set[str]:
            page = await adapter.list_chains(ChainFilter(deduplication_keys=keys), limit=100)
            return set(ids(page.items))

        assert await listed(["order-1"]) == {one.id}
        assert await listed(["order-1", "order-2"]) == {one.id, two.id}
        assert await listed(["order-3"]) == set()
        assert await listed([]) == set()
        combined = await adapter.list_chains(
            ChainFilter(deduplication_keys=["order-1", "order-2"], type_names=[TYPE_B])
        )
        assert ids(combined.items) == [two.id]
        assert plain.id not in await listed(["order-1", "order-2", "order-3"])
