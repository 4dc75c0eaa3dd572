"""Several processes on one store: what ``capabilities.multi_process`` promises.

The cases start worker processes of their own (multiprocessing's ``spawn``), each opening its own
adapter with ``StateHarness.open_in_process``, and let them claim and complete the same jobs at once.
They apply when the adapter declares ``multi_process`` and the harness offers that hook.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from queuert.state import Completion, StateAdapter

from queuert_conformance.applicability import not_applicable, require_capability
from queuert_conformance.harness import StateHarness
from queuert_conformance.spawning import collect_reports, reap
from queuert_conformance.state_suite._support import TYPE_A, Ops, assert_status

__all__ = ["TestMultiProcess"]

PROCESSES = 2
JOBS = 40
PROCESS_TIMEOUT = 60.0
"""Seconds a worker process may take to start, claim its share and report."""


def _work(
    open_adapter: Callable[[], Any],
    worker_id: str,
    barrier: Any,
    results: Any,
) -> None:
    """Body of a worker process: claim jobs of ``TYPE_A`` two at a time and complete each one, as its
    owner, until none is ready; report ``(worker_id, completed ids, error)`` on ``results``."""
    try:
        completed = asyncio.run(_claim_and_complete(open_adapter, worker_id, barrier))
        results.put((worker_id, completed, None))
    except BaseException:
        results.put((worker_id, [], traceback.format_exc()))


async def _claim_and_complete(
    open_adapter: Callable[[], Any], worker_id: str, barrier: Any
) -> list[str]:
    adapter: StateAdapter[Any] = await open_adapter()
    completed: list[str] = []
    try:
        # every process is connected before any claims, so the claims really overlap
        await asyncio.to_thread(barrier.wait, PROCESS_TIMEOUT)
        while True:
            claimed = await adapter.claim_jobs(
                leases={TYPE_A: timedelta(minutes=10)}, limit=2, worker_id=worker_id
            )
            if not claimed.jobs:
                return completed
            async with adapter.transaction() as tx:
                results = await adapter.complete_jobs(
                    [Completion(job.id, output={"by": worker_id}) for job in claimed.jobs],
                    worker_id=worker_id,
                    owner=worker_id,
                    tx=tx,
                )
            lost = [
                job.id for job, result in zip(claimed.jobs, results, strict=True) if result is None
            ]
            if lost:
                raise AssertionError(
                    f"{worker_id} claimed {lost} but could not complete them as their owner: "
                    "another process took them over"
                )
            completed.extend(job.id for job in claimed.jobs)
    finally:
        await adapter.close()


class TestMultiProcess:
    async def test_processes_claiming_from_one_store_never_share_a_job(
        self, queuert_state_harness: StateHarness
    ) -> None:
        harness = queuert_state_harness
        require_capability(harness.adapter.capabilities, "multi_process")
        open_in_process = harness.open_in_process
        if open_in_process is None:
            not_applicable("open_in_process")
        ops = Ops(harness)
        jobs = await ops.create(*(ops.new_job(TYPE_A, {"i": i}) for i in range(JOBS)))

        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(PROCESSES)
        results = context.Queue()
        processes = [
            context.Process(
                target=_work,
                args=(open_in_process, f"process-{n}", barrier, results),
                name=f"queuert-conformance-{n}",
                daemon=True,
            )
            for n in range(PROCESSES)
        ]
        try:
            for process in processes:
                process.start()
            reports = await collect_reports(results, processes, len(processes), PROCESS_TIMEOUT)
        finally:
            await reap(processes, PROCESS_TIMEOUT)
            results.close()

        errors = {worker: error for worker, _, error in reports if error is not None}
        assert not errors, "a worker process failed:\n" + "\n".join(
            f"--- {worker}\n{error}" for worker, error in errors.items()
        )
        by_worker = {worker: completed for worker, completed, _ in reports}
        claimed = [job_id for completed in by_worker.values() for job_id in completed]
        twice = sorted({job_id for job_id in claimed if claimed.count(job_id) > 1})
        assert not twice, (
            f"jobs claimed by two processes at once: {twice} (a claim must lock the rows it takes "
            "so that another process skips them)"
        )
        assert sorted(claimed) == sorted(job.id for job in jobs), (
            "every ready job is claimed by exactly one of the processes"
        )
        for worker, completed in by_worker.items():
            for job_id in completed:
                job = assert_status(await ops.job(job_id), "completed", f"job of {worker}")
                assert job.completed_by == worker and job.output == {"by": worker}, (
                    f"job {job_id} was completed by {worker} but stores "
                    f"completed_by={job.completed_by!r}, output={job.output!r}"
                )
