"""renew_leases: guarded by the worker id and the job being open; reports lost leases."""

from __future__ import annotations

from datetime import timedelta

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    OTHER_WORKER,
    TYPE_A,
    WORKER,
    Ops,
    assert_status,
)

__all__ = ["TestRenewLeases"]


class TestRenewLeases:
    async def test_renews_leases_held_by_the_worker(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        a = await ops.start(TYPE_A)
        b = await ops.start(TYPE_A)
        claimed = await ops.claim(TYPE_A, lease=timedelta(seconds=30))
        assert len(claimed.jobs) == 2
        renewal = await adapter.renew_leases(
            {a.id: timedelta(minutes=5), b.id: timedelta(minutes=7)}, worker_id=WORKER
        )
        assert renewal.lost == []
        assert set(renewal.renewed) == {a.id, b.id}
        for job in claimed.jobs:
            stored = await ops.job(job.id)
            assert stored.leased_until == renewal.renewed[job.id], (
                "the stored lease is the renewed one"
            )
            assert job.leased_until is not None and stored.leased_until > job.leased_until, (
                "a renewal moves leased_until later"
            )
            assert stored.leased_by == WORKER and stored.attempt == 1
            assert_status(stored, "running")
        a_until = renewal.renewed[a.id]
        b_until = renewal.renewed[b.id]
        assert b_until - a_until == timedelta(minutes=2), (
            "each lease gets its own duration from now"
        )

    async def test_later_renewals_move_the_lease(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id, lease=timedelta(seconds=10))
        first = await adapter.renew_leases({job.id: timedelta(minutes=1)}, worker_id=WORKER)
        second = await adapter.renew_leases({job.id: timedelta(minutes=2)}, worker_id=WORKER)
        assert second.renewed[job.id] > first.renewed[job.id]

    async def test_reports_leases_the_worker_no_longer_holds(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        mine = await ops.start(TYPE_A)
        theirs = await ops.start(TYPE_A)
        closed = await ops.start(TYPE_A)
        released = await ops.start(TYPE_A)
        deleted = await ops.start(TYPE_A)
        never_claimed = await ops.start(TYPE_A, {"idle": True})
        await ops.claim_one(mine.id)
        await ops.claim_one(theirs.id, worker_id=OTHER_WORKER)
        await ops.claim_one(closed.id)
        await ops.close_job(closed.id, worker_id=WORKER)
        await ops.claim_one(released.id)
        await adapter.reschedule_job(released.id, schedule=None, error=None)
        await ops.claim_one(deleted.id)
        await adapter.delete_chains([deleted.id])
        missing = ops.unknown_id()
        leases = {
            job_id: timedelta(minutes=1)
            for job_id in (
                mine.id,
                theirs.id,
                closed.id,
                released.id,
                deleted.id,
                never_claimed.id,
                missing,
            )
        }
        renewal = await adapter.renew_leases(leases, worker_id=WORKER)
        assert set(renewal.renewed) == {mine.id}
        assert set(renewal.lost) == {
            theirs.id,
            closed.id,
            released.id,
            deleted.id,
            never_claimed.id,
            missing,
        }, "leases taken by another worker, closed, released, deleted or never held are lost"
        other = await ops.job(theirs.id)
        assert other.leased_by == OTHER_WORKER, "another worker's lease is untouched"
        assert_status(await ops.job(never_claimed.id), "ready")
        assert_status(await ops.job(closed.id), "completed")

    async def test_renewal_in_a_transaction(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id)
        async with adapter.transaction() as tx:
            renewal = await adapter.renew_leases(
                {job.id: timedelta(hours=2)}, worker_id=WORKER, tx=tx
            )
            assert set(renewal.renewed) == {job.id}
        assert (await ops.job(job.id)).leased_until == renewal.renewed[job.id]

    async def test_empty_input(self, queuert_state_harness: StateHarness) -> None:
        renewal = await queuert_state_harness.adapter.renew_leases({}, worker_id=WORKER)
        assert renewal.renewed == {} and renewal.lost == []
