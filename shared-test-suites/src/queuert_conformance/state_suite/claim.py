"""claim_jobs: FIFO batch claims that write the lease and the attempt in one step."""

from __future__ import annotations

from datetime import timedelta

from queuert.schedule import Schedule

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    HOUR,
    TYPE_A,
    TYPE_B,
    TYPE_C,
    WORKER,
    Ops,
    assert_about,
    assert_status,
    ids,
    utcnow,
)

__all__ = ["TestClaimJobs"]


class TestClaimJobs:
    async def test_claim_writes_lease_and_attempt(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A, {"x": 1})
        before = utcnow()
        result = await adapter.claim_jobs(
            leases={TYPE_A: timedelta(seconds=90)}, limit=10, worker_id=WORKER
        )
        assert ids(result.jobs) == [job.id]
        claimed = assert_status(result.jobs[0], "running", "the claimed job")
        assert claimed.attempt == 1
        assert claimed.leased_by == WORKER
        assert claimed.last_attempt_at is not None and claimed.leased_until is not None
        assert_about(claimed.last_attempt_at, before, "last_attempt_at")
        assert claimed.leased_until - claimed.last_attempt_at == timedelta(seconds=90), (
            "leased_until = now + the type's lease duration"
        )
        assert claimed.input == {"x": 1}
        assert result.has_more is False
        assert await ops.job(job.id) == claimed, "the claim is stored as returned"

    async def test_oldest_scheduled_first(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        jobs = [await ops.start(TYPE_A, {"i": i}) for i in range(5)]
        result = await ops.claim(TYPE_A, limit=5)
        assert ids(result.jobs) == ids(jobs), "claimed oldest scheduled_at first"

    async def test_ties_on_scheduled_at_are_broken_by_id(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with adapter.transaction() as tx:
            created = await ops.create(*[ops.new_job(TYPE_A, {"i": i}) for i in range(6)], tx=tx)
        # Transaction-time stores give these one scheduled_at; the order is then by id.
        expected = sorted(created, key=lambda j: (j.scheduled_at, j.id))
        result = await ops.claim(TYPE_A, limit=6)
        assert ids(result.jobs) == ids(expected)

    async def test_claims_only_requested_types_across_several(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        a = await ops.start(TYPE_A)
        b = await ops.start(TYPE_B)
        await ops.start(TYPE_C)
        result = await adapter.claim_jobs(
            leases={TYPE_A: timedelta(seconds=30), TYPE_B: timedelta(seconds=60)},
            limit=10,
            worker_id=WORKER,
        )
        assert ids(result.jobs) == [a.id, b.id]
        by_id = {j.id: j for j in result.jobs}
        for job_id, seconds in ((a.id, 30), (b.id, 60)):
            until, started = by_id[job_id].leased_until, by_id[job_id].last_attempt_at
            assert until is not None and started is not None
            assert until - started == timedelta(seconds=seconds), "each type gets its own lease"
        assert result.has_more is False, "a ready job of a type not asked for is not 'more'"

    async def test_only_ready_jobs(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        await ops.start(TYPE_A, schedule=Schedule(after=HOUR))
        blocker = await ops.start(TYPE_B)
        await ops.start_blocked(TYPE_A, [blocker.id])
        running = await ops.start(TYPE_A)
        await ops.claim_one(running.id)
        closed = await ops.start(TYPE_A)
        await ops.close_job(closed.id)
        continued = await ops.start(TYPE_A)
        await ops.continue_with(continued, TYPE_C)
        result = await ops.claim(TYPE_A)
        assert result.jobs == [], (
            f"scheduled, blocked, running and closed jobs must not be claimed, got {ids(result.jobs)}"
        )
        assert result.has_more is False

    async def test_limit_and_has_more_without_false_positives(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        jobs = [await ops.start(TYPE_A) for _ in range(5)]
        first = await ops.claim(TYPE_A, limit=2)
        assert ids(first.jobs) == ids(jobs[:2]) and first.has_more is True
        second = await ops.claim(TYPE_A, limit=3)
        assert ids(second.jobs) == ids(jobs[2:])
        assert second.has_more is False, (
            "has_more after taking the last ready job is a false positive"
        )
        third = await ops.claim(TYPE_A, limit=3)
        assert third.jobs == [] and third.has_more is False

    async def test_has_more_ignores_jobs_that_are_not_ready(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        ready = await ops.start(TYPE_A)
        await ops.start(TYPE_A, schedule=Schedule(after=HOUR))
        blocker = await ops.start(TYPE_B)
        await ops.start_blocked(TYPE_A, [blocker.id])
        result = await ops.claim(TYPE_A, limit=1)
        assert ids(result.jobs) == [ready.id]
        assert result.has_more is False, "only a ready job counts as 'more'"

    async def test_exact_limit_reports_no_more(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        for _ in range(3):
            await ops.start(TYPE_A)
        result = await ops.claim(TYPE_A, limit=3)
        assert len(result.jobs) == 3 and result.has_more is False

    async def test_attempts_count_up_across_claims(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        for attempt in (1, 2, 3):
            claimed = await ops.claim_one(job.id)
            assert claimed.attempt == attempt
            await adapter.reschedule_job(job.id, schedule=None, error=f"error {attempt}")
        assert (await ops.job(job.id)).attempt == 3

    async def test_claim_in_a_transaction(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        async with adapter.transaction() as tx:
            result = await ops.claim(TYPE_A, tx=tx)
            assert ids(result.jobs) == [job.id]
            assert_status(await ops.job(job.id, tx=tx), "running")
            again = await ops.claim(TYPE_A, tx=tx)
            assert again.jobs == [], "a job claimed in this transaction is not claimed again"
        assert_status(await ops.job(job.id), "running")

    async def test_continuation_is_claimable(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id)
        successor, _ = await ops.continue_with(job, TYPE_A, worker_id=WORKER)
        result = await ops.claim(TYPE_A)
        assert ids(result.jobs) == [successor.id]
