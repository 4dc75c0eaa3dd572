"""complete_job: completed (with output or a successor), failed and cancelled."""

from __future__ import annotations

from typing import Any

import pytest
from queuert.errors import (
    JobAlreadyCompletedError,
    JobNotFoundError,
    JobTakenByAnotherWorkerError,
)
from queuert.json import JsonValue, dumps
from queuert.state import Completion, StoredJob

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    OTHER_WORKER,
    TYPE_A,
    TYPE_B,
    TYPE_C,
    WORKER,
    Ops,
    assert_about,
    assert_status,
    assert_utc,
    utcnow,
)

__all__ = ["TestCompleteJob", "TestCompleteJobs"]


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
        result = await ops.close_job(job.id, "failed", worker_id=WORKER, error="ValueError: bad")
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
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        missing = ops.unknown_id()
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
            (second,) = await ops.create(ops.next_job(first, TYPE_B), tx=tx)
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

    async def test_without_tx_runs_in_its_own_transaction(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        dependent = await ops.start_blocked(TYPE_A, [blocker.id])
        result = await adapter.complete_job(
            blocker.id, outcome="completed", worker_id=None, output={"ok": 1}
        )
        assert_status(result.job, "completed")
        assert ids_of(result.unblocked) == [dependent.id]
        assert (await ops.job(blocker.id)).output == {"ok": 1}
        assert_status(await ops.job(dependent.id), "ready")

    async def test_an_already_closed_job_raises(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        await ops.close_job(job.id, output="first")
        with pytest.raises(JobAlreadyCompletedError) as caught:
            await adapter.complete_job(job.id, outcome="completed", worker_id=None, output="again")
        assert caught.value.job_id == job.id
        assert (await ops.job(job.id)).output == "first", "a refused completion changes nothing"
        first = await ops.start(TYPE_A)
        await ops.continue_with(first, TYPE_B)
        with pytest.raises(JobAlreadyCompletedError):
            await adapter.complete_job(first.id, outcome="cancelled", worker_id=None)
        assert_status(await ops.job(first.id), "continued")

    async def test_owner_guard(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        claimed = await ops.claim_one(job.id, worker_id=OTHER_WORKER)
        with pytest.raises(JobTakenByAnotherWorkerError) as caught:
            await adapter.complete_job(
                job.id, outcome="completed", worker_id=WORKER, output=1, owner=WORKER
            )
        assert caught.value.job_id == job.id and caught.value.leased_by == OTHER_WORKER
        assert await ops.job(job.id) == claimed, "a refused completion changes nothing"
        unleased = await ops.start(TYPE_B)
        with pytest.raises(JobTakenByAnotherWorkerError):
            await adapter.complete_job(
                unleased.id, outcome="failed", worker_id=WORKER, error="e", owner=WORKER
            )
        assert_status(await ops.job(unleased.id), "ready")
        result = await adapter.complete_job(
            job.id, outcome="completed", worker_id=OTHER_WORKER, output=2, owner=OTHER_WORKER
        )
        assert_status(result.job, "completed")
        assert result.job.completed_by == OTHER_WORKER

    async def test_owner_guard_inside_a_transaction(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id)
        async with adapter.transaction() as tx:
            successor_job = await ops.create(ops.next_job(job, TYPE_B), tx=tx)
            result = await adapter.complete_job(
                job.id,
                outcome="completed",
                worker_id=WORKER,
                succeeded_by_job_id=successor_job[0].id,
                owner=WORKER,
                tx=tx,
            )
            assert_status(result.job, "continued")
        assert (await ops.chain(job.id)).tail.id == successor_job[0].id


def ids_of(jobs: list[StoredJob]) -> list[str]:
    return [j.id for j in jobs]


class TestCompleteJobs:
    async def test_closes_several_jobs_in_input_order(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        a = await ops.start(TYPE_A)
        b = await ops.start(TYPE_A)
        c = await ops.start(TYPE_A)
        await ops.claim(TYPE_A)
        results = await adapter.complete_jobs(
            [
                Completion(c.id, output={"c": 1}),
                Completion(a.id, outcome="failed", error="a failed"),
                Completion(b.id, outcome="cancelled"),
            ],
            worker_id=WORKER,
        )
        assert [r.job.id if r else None for r in results] == [c.id, a.id, b.id]
        assert [r.job.status if r else None for r in results] == [
            "completed",
            "failed",
            "cancelled",
        ]
        stored_c = await ops.job(c.id)
        assert stored_c.output == {"c": 1} and stored_c.completed_by == WORKER
        assert stored_c.leased_until is None
        assert (await ops.job(a.id)).last_attempt_error == "a failed"
        for job in (a, b, c):
            assert (await ops.chain(job.id)).status == "closed"

    @pytest.mark.parametrize("count", [1, 3])
    async def test_output_text_carried_by_the_core_is_the_stored_output(
        self, queuert_state_harness: StateHarness, count: int
    ) -> None:
        """A completion may carry its output's JSON text (the core encoded it once to check it):
        the job stores that output, returns it, and reads it back the same, alone or in a batch."""
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        outputs: list[Any] = [{"b": [1, 2.5, None], "a": "\u00e9"}, "text", None][:count]
        jobs = [await ops.start(TYPE_A) for _ in outputs]
        for job in jobs:
            await ops.claim_one(job.id)
        results = await adapter.complete_jobs(
            [
                Completion(job.id, output=output, output_text=dumps(output))
                for job, output in zip(jobs, outputs, strict=True)
            ],
            worker_id=WORKER,
            owner=WORKER,
        )
        for job, output, result in zip(jobs, outputs, results, strict=True):
            assert result is not None, "closed: the worker holds the job"
            assert result.job.output == output, "the returned job has the output"
            stored = await ops.job(job.id)
            assert stored.output == output, "the stored output is the value of the text"
            assert stored == result.job

    @pytest.mark.parametrize(("count", "waited_for"), [(1, False), (4, False), (4, True)])
    async def test_a_completion_carrying_its_claimed_job_returns_the_row(
        self, queuert_state_harness: StateHarness, count: int, waited_for: bool
    ) -> None:
        """A completion may carry the job as its worker claimed it (a store may build the closed
        job from it): the closed job returned is the row as read back, whatever the outcome, with
        the row's attempt even when the claimed copy is older, and with its dependents released."""
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        jobs = [await ops.start(TYPE_A) for _ in range(count)]
        dependent = await ops.start_blocked(TYPE_B, [jobs[-1].id]) if waited_for else None
        claimed = {job.id: job for job in (await ops.claim(TYPE_A, limit=count)).jobs}
        assert set(claimed) == {job.id for job in jobs}
        copies = [jobs[0], *(claimed[job.id] for job in jobs[1:])]  # the first: before its claim
        output: JsonValue = {"n": [1, "x"]}
        closes: list[dict[str, Any]] = [
            {"output": output, "output_text": dumps(output)},
            {"outcome": "failed", "error": "boom"},
            {"outcome": "cancelled"},
        ]
        closes = [*closes[: count - 1], {"output": [2]}]
        completions = [
            Completion(job.id, claimed=copy, **close)
            for job, copy, close in zip(jobs, copies, closes, strict=True)
        ]
        results = await adapter.complete_jobs(completions, worker_id=WORKER, owner=WORKER)
        for job, result in zip(jobs, results, strict=True):
            assert result is not None, "closed: the worker holds the job"
            assert result.job == await ops.job(job.id)
        last = results[-1]
        assert last is not None
        assert ids_of(last.unblocked) == ([] if dependent is None else [dependent.id])

    async def test_missing_closed_and_foreign_jobs_are_skipped(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        mine = await ops.start(TYPE_A)
        theirs = await ops.start(TYPE_B)
        closed = await ops.start(TYPE_C)
        await ops.claim_one(mine.id)
        await ops.claim_one(theirs.id, worker_id=OTHER_WORKER)
        await ops.close_job(closed.id, output="done")
        missing = ops.unknown_id()
        results = await adapter.complete_jobs(
            [
                Completion(mine.id, output=1),
                Completion(theirs.id, output=2),
                Completion(closed.id, output=3),
                Completion(missing, output=4),
            ],
            worker_id=WORKER,
            owner=WORKER,
        )
        assert results[0] is not None and results[0].job.id == mine.id
        assert results[1:] == [None, None, None], (
            "a job leased by another worker, a closed job and a missing job give None"
        )
        assert_status(await ops.job(theirs.id), "running")
        assert (await ops.job(theirs.id)).leased_by == OTHER_WORKER
        assert (await ops.job(closed.id)).output == "done"
        assert_status(await ops.job(mine.id), "completed")

    async def test_unblocks_dependents_and_continues(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        b1 = await ops.start(TYPE_B)
        b2 = await ops.start(TYPE_B)
        both = await ops.start_blocked(TYPE_A, [b1.id, b2.id])
        only_b1 = await ops.start_blocked(TYPE_A, [b1.id])
        looping = await ops.start(TYPE_C)
        async with adapter.transaction() as tx:
            (successor,) = await ops.create(ops.next_job(looping, TYPE_C), tx=tx)
            results = await adapter.complete_jobs(
                [
                    Completion(b1.id, output=1),
                    Completion(looping.id, succeeded_by_job_id=successor.id),
                    Completion(b2.id, output=2),
                ],
                worker_id=None,
                tx=tx,
            )
        r1, r_loop, r2 = results
        assert r1 is not None and r_loop is not None and r2 is not None
        assert ids_of(r1.unblocked) == [only_b1.id], "released once its only blocker closed"
        assert ids_of(r2.unblocked) == [both.id], "released when its last open blocker closed"
        assert r_loop.unblocked == [] and r_loop.job.status == "continued"
        assert_status(await ops.job(both.id), "ready")
        assert_status(await ops.job(only_b1.id), "ready")
        assert (await ops.chain(looping.id)).tail.id == successor.id

    async def test_empty_input(self, queuert_state_harness: StateHarness) -> None:
        assert await queuert_state_harness.adapter.complete_jobs([], worker_id=None) == []

    async def test_rolls_back_with_its_transaction(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        dependent = await ops.start_blocked(TYPE_A, [blocker.id])

        class Abort(Exception):
            pass

        with pytest.raises(Abort):
            async with adapter.transaction() as tx:
                await adapter.complete_jobs(
                    [Completion(blocker.id, output=1)], worker_id=None, tx=tx
                )
                raise Abort()
        assert_status(await ops.job(blocker.id), "ready")
        assert_status(await ops.job(dependent.id), "blocked")
