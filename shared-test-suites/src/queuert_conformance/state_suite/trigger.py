"""trigger_jobs: scheduled jobs become ready now, all or nothing."""

from __future__ import annotations

from queuert.schedule import Schedule

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    HOUR,
    TYPE_A,
    TYPE_B,
    Ops,
    assert_status,
    ids,
)

__all__ = ["TestTriggerJobs"]


class TestTriggerJobs:
    async def test_scheduled_job_becomes_ready_and_claimable(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A, {"keep": "me"}, schedule=Schedule(after=HOUR))
        result = await adapter.trigger_jobs([job.id])
        assert result.not_found == [] and result.not_triggerable == []
        assert ids(result.triggered) == [job.id]
        triggered = assert_status(result.triggered[0], "ready", "a triggered job")
        assert triggered.scheduled_at < job.scheduled_at
        stored = await ops.job(job.id)
        assert stored == triggered
        for field in (
            "input",
            "attempt",
            "created_at",
            "type_name",
            "chain_id",
            "last_attempt_error",
        ):
            assert getattr(stored, field) == getattr(job, field), f"trigger must not change {field}"
        claimed = await ops.claim(TYPE_A)
        assert ids(claimed.jobs) == [job.id]

    async def test_results_in_input_order(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        jobs = [await ops.start(TYPE_A, schedule=Schedule(after=HOUR)) for _ in range(4)]
        order = [jobs[2].id, jobs[0].id, jobs[3].id, jobs[1].id]
        result = await adapter.trigger_jobs(order)
        assert ids(result.triggered) == order

    async def test_a_ready_job_can_be_triggered(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        result = await adapter.trigger_jobs([job.id])
        assert ids(result.triggered) == [job.id]
        assert_status(result.triggered[0], "ready")

    async def test_empty_input(self, queuert_state_harness: StateHarness) -> None:
        result = await queuert_state_harness.adapter.trigger_jobs([])
        assert result.triggered == [] and result.not_found == [] and result.not_triggerable == []

    async def test_missing_ids_trigger_nothing(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A, schedule=Schedule(after=HOUR))
        missing = ops.unknown_id()
        result = await adapter.trigger_jobs([job.id, missing])
        assert result.not_found == [missing]
        assert result.triggered == [], "all or nothing: one missing id triggers nothing"
        assert_status(await ops.job(job.id), "scheduled")

    async def test_jobs_in_other_statuses_trigger_nothing(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        scheduled = await ops.start(TYPE_A, schedule=Schedule(after=HOUR))
        running = await ops.start(TYPE_B)
        await ops.claim_one(running.id)
        blocker = await ops.start(TYPE_B, schedule=Schedule(after=HOUR))
        blocked = await ops.start_blocked(TYPE_A, [blocker.id])
        completed = await ops.start(TYPE_B, schedule=Schedule(after=HOUR))
        await ops.close_job(completed.id, output=1)
        result = await adapter.trigger_jobs([scheduled.id, running.id, blocked.id, completed.id])
        assert result.triggered == []
        assert sorted(result.not_triggerable) == sorted(
            [(running.id, "running"), (blocked.id, "blocked"), (completed.id, "completed")]
        ), "each refused id is reported with its status"
        assert_status(await ops.job(scheduled.id), "scheduled", "the triggerable job, untouched")

    async def test_in_a_transaction(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A, schedule=Schedule(after=HOUR))
        async with adapter.transaction() as tx:
            result = await adapter.trigger_jobs([job.id], tx=tx)
            assert ids(result.triggered) == [job.id]
            assert_status(await ops.job(job.id, tx=tx), "ready")
        assert_status(await ops.job(job.id), "ready")
