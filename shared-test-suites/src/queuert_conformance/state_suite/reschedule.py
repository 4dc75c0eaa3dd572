"""reschedule_job: a running job goes back to waiting, per its schedule."""

from __future__ import annotations

import pytest
from queuert.errors import JobNotFoundError
from queuert.schedule import Schedule

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    HOUR,
    TYPE_A,
    Ops,
    assert_about,
    assert_status,
    utcnow,
    whole_second,
)

__all__ = ["TestRescheduleJob"]


class TestRescheduleJob:
    async def test_without_schedule_the_job_is_ready_again(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        claimed = await ops.claim_one(job.id)
        stored = await adapter.reschedule_job(job.id, schedule=None, error="Boom: try again")
        assert_status(stored, "ready", "a job rescheduled without schedule")
        assert stored.leased_by is None and stored.leased_until is None, "the lease is cleared"
        assert stored.last_attempt_error == "Boom: try again"
        assert stored.attempt == 1, "rescheduling does not change the attempt count"
        assert stored.last_attempt_at == claimed.last_attempt_at
        assert (
            claimed.last_attempt_at is not None and stored.scheduled_at >= claimed.last_attempt_at
        )
        assert await ops.job(job.id) == stored

    async def test_after(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id)
        before = utcnow()
        stored = await adapter.reschedule_job(job.id, schedule=Schedule(after=HOUR), error="later")
        assert_status(stored, "scheduled")
        assert_about(stored.scheduled_at, before + HOUR, "scheduled_at of Schedule(after=1h)")
        assert (await ops.claim(TYPE_A)).jobs == [], (
            "a job rescheduled into the future is not ready"
        )

    async def test_at(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id)
        at = whole_second(utcnow() + 3 * HOUR)
        stored = await adapter.reschedule_job(job.id, schedule=Schedule(at=at), error=None)
        assert_status(stored, "scheduled")
        assert stored.scheduled_at == at

    async def test_past_at_is_clamped_to_now(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        claimed = await ops.claim_one(job.id)
        stored = await adapter.reschedule_job(
            job.id, schedule=Schedule(at=utcnow() - 10 * HOUR), error=None
        )
        assert_status(stored, "ready")
        assert claimed.last_attempt_at is not None
        assert stored.scheduled_at >= claimed.last_attempt_at, "a past `at` is clamped to now"

    async def test_error_none_keeps_the_previous_error(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id)
        await adapter.reschedule_job(job.id, schedule=None, error="kept")
        await ops.claim_one(job.id)
        stored = await adapter.reschedule_job(job.id, schedule=None, error=None)
        assert stored.last_attempt_error == "kept"
        await ops.claim_one(job.id)
        stored = await adapter.reschedule_job(job.id, schedule=None, error="replaced")
        assert stored.last_attempt_error == "replaced"

    async def test_missing_job_raises(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        missing = ops.unknown_id()
        with pytest.raises(JobNotFoundError) as caught:
            await queuert_state_harness.adapter.reschedule_job(missing, schedule=None, error="x")
        assert caught.value.job_id == missing

    async def test_in_a_transaction(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id)
        async with adapter.transaction() as tx:
            await adapter.get_job(job.id, lock=True, tx=tx)
            stored = await adapter.reschedule_job(job.id, schedule=None, error="e", tx=tx)
            assert_status(stored, "ready")
        assert_status(await ops.job(job.id), "ready")
