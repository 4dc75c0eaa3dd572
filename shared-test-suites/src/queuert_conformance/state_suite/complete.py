"""complete_job: completed (with output or a successor), failed and cancelled."""

from __future__ import annotations

from typing import Any

import pytest
from queuert.errors import JobNotFoundError
from queuert.ids import uuid7

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    TYPE_A,
    TYPE_B,
    WORKER,
    Ops,
    assert_about,
    assert_status,
    assert_utc,
    next_job,
    utcnow,
)

__all__ = ["TestCompleteJob"]


class TestCompleteJob:
    async def test_completes_with_output_and_closes_the_chain(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id)
        before = utcnow()
        result = await ops.close_job(
            job.id, output={"answer": 42, "list": [1, None]}, worker_id=WORKER
        )
        closed = assert_status(result.job, "completed", "the completed job as returned")
        assert closed.outcome == "completed"
        assert closed.output == {"answer": 42, "list": [1, None]}
        assert closed.completed_by == WORKER
        assert_utc(closed.completed_at, "completed_at")
        assert_about(closed.completed_at, before, "completed_at")
        assert closed.leased_by is None and closed.leased_until is None, "the lease is cleared"
        assert closed.succeeded_by_job_id is None
        assert closed.attempt == 1, "completion does not count an attempt"
        assert await ops.job(job.id) == closed
        chain = await ops.chain(job.id)
        assert chain.status == "closed" and chain.tail.id == job.id
        assert result.unblocked == [] and result.blocker_trace_contexts == []

    async def test_workerless_completion_of_a_ready_job(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        job = await ops.start(TYPE_A)
        result = await ops.close_job(job.id, output="approved")
        assert_status(result.job, "completed")
        assert result.job.completed_by is None, "workerless completion records no worker"
        assert result.job.output == "approved"
        assert result.job.attempt == 0

    async def test_workerless_completion_of_a_running_job_clears_the_lease(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id)
        result = await ops.close_job(job.id, output=None)
        assert result.job.leased_by is None and result.job.leased_until is None
        assert result.job.completed_by is None

    async def test_completion_clears_the_previous_error(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id)
        await adapter.reschedule_job(job.id, schedule=None, error="first attempt failed")
        assert (await ops.job(job.id)).last_attempt_error == "first attempt failed"
        await ops.claim_one(job.id)
        result = await ops.close_job(job.id, output=1, worker_id=WORKER)
        assert result.job.last_attempt_error is None, (
            "a successful completion clears the last error"
        )

    async def test_continuation_keeps_the_chain_open(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id)
        successor, result = await ops.continue_with(job, TYPE_B, {"next": 1}, worker_id=WORKER)
        continued = assert_status(result.job, "continued", "a job completed with a successor")
        assert continued.outcome == "completed"
        assert continued.succeeded_by_job_id == successor.id
        assert continued.output is None, "a continued job has no output"
        assert continued.completed_by == WORKER and continued.completed_at is not None
        assert continued.leased_until is None
        assert result.unblocked == [], "continuing does not close the chain"
        chain = await ops.chain(job.id)
        assert chain.status == "open" and chain.tail.id == successor.id

    async def test_failed_closes_the_chain_with_the_error(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id)
        result = await ops.close_job(
            job.id, "failed", output={"ignored": True}, worker_id=WORKER, error="ValueError: bad"
        )
        failed = assert_status(result.job, "failed", "a failed job")
        assert failed.outcome == "failed"
        assert failed.last_attempt_error == "ValueError: bad"
        assert failed.output is None, "a failed chain has no output"
        assert failed.completed_by == WORKER and failed.completed_at is not None
        assert failed.leased_until is None
        chain = await ops.chain(job.id)
        assert chain.status == "closed" and chain.tail.outcome == "failed"

    async def test_cancelled_closes_the_chain(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        first = await ops.start(TYPE_A)
        second, _ = await ops.continue_with(first, TYPE_B)
        result = await ops.close_job(second.id, "cancelled")
        cancelled = assert_status(result.job, "cancelled", "a cancelled job")
        assert cancelled.output is None and cancelled.completed_by is None
        chain = await ops.chain(first.id)
        assert chain.status == "closed" and chain.tail.outcome == "cancelled"
        assert_status(chain.root, "continued", "the chain's first job")

    async def test_missing_job_raises(self, queuert_state_harness: StateHarness) -> None:
        adapter = queuert_state_harness.adapter
        missing = uuid7()
        async with adapter.transaction() as tx:
            with pytest.raises(JobNotFoundError) as caught:
                await adapter.complete_job(
                    missing, outcome="completed", worker_id=None, output=None, tx=tx
                )
        assert caught.value.job_id == missing

    async def test_output_is_not_aliased(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        job = await ops.start(TYPE_A)
        output: dict[str, Any] = {"items": [1, 2]}
        result = await ops.close_job(job.id, output=output)
        output["items"].append(3)
        assert isinstance(result.job.output, dict)
        result.job.output["items"].append(4)  # type: ignore[union-attr]
        assert (await ops.job(job.id)).output == {"items": [1, 2]}

    async def test_chain_with_a_continuation_closed_at_its_tail(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        first = await ops.start(TYPE_A)
        async with adapter.transaction() as tx:
            await adapter.get_job(first.id, lock=True, tx=tx)
            (second,) = await ops.create(next_job(first, TYPE_B), tx=tx)
            await adapter.complete_job(
                first.id,
                outcome="completed",
                worker_id=None,
                succeeded_by_job_id=second.id,
                tx=tx,
            )
            chain = await ops.chain(first.id, tx=tx)
            assert chain.tail.id == second.id and chain.status == "open"
        result = await ops.close_job(second.id, output=[True])
        chain = await ops.chain(first.id)
        assert chain.status == "closed" and chain.tail.output == [True]
        assert result.job.chain_index == 1
