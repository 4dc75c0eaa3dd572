"""reap_expired_leases: expired leases go back to ready, showing the lease they had."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    OTHER_WORKER,
    TYPE_A,
    TYPE_B,
    WORKER,
    Ops,
    assert_status,
    ids,
)

__all__ = ["TestReapExpiredLeases"]

EXPIRED = timedelta(0)
"""A lease that has expired as soon as it is written (``leased_until = now``)."""


class TestReapExpiredLeases:
    async def test_expired_lease_returns_to_ready(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        claimed = await ops.claim_one(job.id, lease=EXPIRED)
        assert_status(claimed, "running", "a job with an expired, unreaped lease")
        reaped = await adapter.reap_expired_leases([TYPE_A], limit=10)
        assert ids(reaped) == [job.id]
        assert reaped[0].leased_by == WORKER, "the reaped row shows who held the expired lease"
        assert reaped[0].leased_until == claimed.leased_until, "... and until when"
        stored = await ops.job(job.id)
        assert_status(stored, "ready", "a reaped job")
        assert stored.leased_by is None and stored.leased_until is None, (
            "the stored lease is cleared"
        )
        assert stored.attempt == 1, "reaping keeps the attempt count"
        assert stored.scheduled_at == job.scheduled_at, "reaping does not reschedule"
        again = await ops.claim_one(job.id)
        assert again.attempt == 2

    async def test_nothing_expired(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        assert await adapter.reap_expired_leases([TYPE_A], limit=10) == []
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id)
        await ops.start(TYPE_A)
        assert await adapter.reap_expired_leases([TYPE_A], limit=10) == [], (
            "a live lease and an unclaimed job are not reaped"
        )
        assert_status(await ops.job(job.id), "running")

    async def test_respects_types_exclusions_and_limit(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        a1 = await ops.start(TYPE_A)
        a2 = await ops.start(TYPE_A)
        a3 = await ops.start(TYPE_A)
        b1 = await ops.start(TYPE_B)
        for job in (a1, a2, a3):
            await ops.claim_one(job.id, lease=EXPIRED)
        await ops.claim_one(b1.id, lease=EXPIRED, worker_id=OTHER_WORKER)
        first = await adapter.reap_expired_leases([TYPE_A], limit=1, exclude_job_ids=[a1.id])
        assert ids(first) == [a2.id], "oldest expiry first, skipping excluded ids, up to limit"
        rest = await adapter.reap_expired_leases([TYPE_A], limit=10, exclude_job_ids=[a1.id])
        assert ids(rest) == [a3.id]
        assert_status(await ops.job(a1.id), "running", "an excluded job")
        assert_status(await ops.job(b1.id), "running", "a job of another type")
        both = await adapter.reap_expired_leases([TYPE_A, TYPE_B], limit=10)
        assert set(ids(both)) == {a1.id, b1.id}
        assert {j.id: j.leased_by for j in both} == {a1.id: WORKER, b1.id: OTHER_WORKER}

    async def test_oldest_expiry_first(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        older = await ops.start(TYPE_A)
        newer = await ops.start(TYPE_A)
        await ops.claim_one(older.id, lease=EXPIRED)
        await ops.claim_one(newer.id, lease=EXPIRED)
        # Renewing the older job's lease (still with zero length) moves its expiry after the newer's.
        renewal = await adapter.renew_leases({older.id: EXPIRED}, worker_id=WORKER)
        assert set(renewal.renewed) == {older.id}
        reaped = await adapter.reap_expired_leases([TYPE_A], limit=10)
        assert ids(reaped) == [newer.id, older.id], "reaped in order of lease expiry"

    async def test_closed_jobs_are_not_reaped(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id, lease=EXPIRED)
        await ops.close_job(job.id, output=1, worker_id=WORKER)
        assert await adapter.reap_expired_leases([TYPE_A], limit=10) == []
        assert_status(await ops.job(job.id), "completed")

    async def test_a_lease_expiring_later_is_reaped_then(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id, lease=timedelta(milliseconds=50))
        await asyncio.sleep(0.2)  # let the store's clock pass the lease (not a race)
        reaped = await adapter.reap_expired_leases([TYPE_A], limit=10)
        assert ids(reaped) == [job.id]

    async def test_in_a_transaction(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id, lease=EXPIRED)
        async with adapter.transaction() as tx:
            reaped = await adapter.reap_expired_leases([TYPE_A], limit=10, tx=tx)
            assert ids(reaped) == [job.id]
            assert_status(await ops.job(job.id, tx=tx), "ready")
        assert_status(await ops.job(job.id), "ready")
