"""Concurrency limits across processes: four worker processes claim limited jobs from one store at
once, the ones chosen as victims are killed (SIGKILL) as soon as they hold jobs, and at no point does
any process see more jobs running than the limits allow; the others reap the killed ones' leases and
finish the work. The first victim claims before the others start (so at least one process dies
holding jobs); the second claims alongside them, and is killed if it gets a job.

Applies when the adapter declares ``multi_process`` and ``concurrency_limits`` and the harness
offers ``open_in_process``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import traceback
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from queuert.limits import ConcurrencyLimit
from queuert.state import Completion, JobFilter, StateAdapter

from queuert_conformance.applicability import not_applicable, require_capability
from queuert_conformance.harness import StateHarness
from queuert_conformance.spawning import collect_reports, reap
from queuert_conformance.state_suite._support import TYPE_A, Ops

__all__ = ["TestLimitsAcrossProcesses"]

PROCESSES = 4
VICTIMS = 2
"""Processes killed (SIGKILL) while they hold claimed jobs."""
JOBS = 40
KEYS = 5
LIMITS = {TYPE_A: ConcurrencyLimit(limit=3, key_limit=1)}
LEASE = timedelta(seconds=1)
PROCESS_TIMEOUT = 90.0


def _work(
    open_adapter: Callable[[], Any],
    worker_id: str,
    holding: Any,
    barrier: Any,
    go: Any,
    events: Any,
) -> None:
    """Body of a worker process. A victim claims once, says so, and waits to be killed; a survivor
    claims, checks the running jobs, completes what it claimed and reaps, until every job is
    closed, then reports ``(worker_id, peak per type, peak per key, completed, error)``."""
    try:
        report = asyncio.run(_run(open_adapter, worker_id, holding, barrier, go))
        events.put(("report", report))
    except BaseException:
        events.put(("report", (worker_id, 0, 0, 0, traceback.format_exc())))


async def _run(
    open_adapter: Callable[[], Any], worker_id: str, holding: Any, barrier: Any, go: Any
) -> tuple[str, int, int, int, str | None]:
    adapter: StateAdapter[Any] = await open_adapter()
    peak_type = peak_key = completed = 0
    try:
        await asyncio.to_thread(barrier.wait, PROCESS_TIMEOUT)
        if worker_id != "process-0" and not await asyncio.to_thread(go.wait, PROCESS_TIMEOUT):
            raise AssertionError("the first victim was not killed in time")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PROCESS_TIMEOUT
        while loop.time() < deadline:
            claimed = await adapter.claim_jobs(
                leases={TYPE_A: LEASE}, limit=2, worker_id=worker_id, limits=LIMITS
            )
            running = (
                await adapter.list_jobs(
                    JobFilter(type_names=[TYPE_A], statuses=["running"]), limit=100
                )
            ).items
            peak_type = max(peak_type, len(running))
            per_key = Counter(job.limit_key for job in running)
            peak_key = max([peak_key, *per_key.values()])
            if holding is not None and claimed.jobs:
                # an Event, not the queue: a process killed while its queue's feeder thread
                # holds the queue's lock would leave every other writer of the queue stuck
                holding.set()
                await asyncio.sleep(PROCESS_TIMEOUT)  # killed here, holding its jobs
            if claimed.jobs:
                await asyncio.sleep(0.01)  # the jobs' work
                results = await adapter.complete_jobs(
                    [Completion(job.id, output=None) for job in claimed.jobs],
                    worker_id=worker_id,
                    owner=worker_id,
                )
                completed += sum(1 for r in results if r is not None)
                continue
            await adapter.reap_expired_leases([TYPE_A], limit=100)
            left = await adapter.list_jobs(
                JobFilter(type_names=[TYPE_A], statuses=["ready", "running", "scheduled"]),
                limit=1,
            )
            if not left.items:
                return worker_id, peak_type, peak_key, completed, None
            await asyncio.sleep(0.05)
        return worker_id, peak_type, peak_key, completed, "the jobs did not all close in time"
    finally:
        await adapter.close()


class TestLimitsAcrossProcesses:
    async def test_limits_hold_across_processes_that_are_killed(
        self, queuert_state_harness: StateHarness
    ) -> None:
        harness = queuert_state_harness
        require_capability(harness.adapter.capabilities, "multi_process")
        require_capability(harness.adapter.capabilities, "concurrency_limits")
        open_in_process = harness.open_in_process
        if open_in_process is None:
            not_applicable("open_in_process")
        ops = Ops(harness)
        await ops.create(
            *(ops.new_job(TYPE_A, {"i": i}, limit_key=f"k{i % KEYS}") for i in range(JOBS))
        )
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(PROCESSES)
        go = context.Event()
        events = context.Queue()
        holding = [context.Event() if n < VICTIMS else None for n in range(PROCESSES)]
        processes = [
            context.Process(
                target=_work,
                args=(open_in_process, f"process-{n}", holding[n], barrier, go, events),
                name=f"queuert-conformance-limits-{n}",
                daemon=True,
            )
            for n in range(PROCESSES)
        ]
        try:
            for process in processes:
                process.start()
            first = holding[0]
            assert first is not None
            if not await asyncio.to_thread(first.wait, PROCESS_TIMEOUT):
                raise AssertionError("the first victim claimed nothing")
            processes[0].kill()
            killed = {0}
            go.set()  # the others start once the first victim is dead
            reports: list[Any] = []
            deadline = asyncio.get_running_loop().time() + PROCESS_TIMEOUT
            while len(killed) + len(reports) < PROCESSES:
                for n, event in enumerate(holding):
                    if event is not None and n not in killed and event.is_set():
                        processes[n].kill()
                        killed.add(n)
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(
                        f"the processes did not finish within {PROCESS_TIMEOUT:g}s "
                        f"(exit codes: {[p.exitcode for p in processes]})"
                    )
                try:
                    # bounded waits on the queue, between looks at the victims' events
                    _, payload = await asyncio.to_thread(events.get, True, 0.2)
                except queue.Empty:
                    continue
                reports.append(payload)
            await collect_reports(events, processes, 0, PROCESS_TIMEOUT)
        finally:
            await reap(processes, PROCESS_TIMEOUT)
            events.close()

        errors = {worker: error for worker, *_, error in reports if error is not None}
        assert not errors, "a worker process failed:\n" + "\n".join(
            f"--- {worker}\n{error}" for worker, error in errors.items()
        )
        assert all(peak <= 3 for _, peak, _, _, _ in reports), f"over the limit: {reports}"
        assert all(peak <= 1 for _, _, peak, _, _ in reports), f"a key ran twice: {reports}"
        closed = await ops.all_jobs()
        assert [j.status for j in closed] == ["completed"] * JOBS, "the survivors finish all"
