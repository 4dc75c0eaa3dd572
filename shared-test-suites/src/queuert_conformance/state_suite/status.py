"""Status precedence: every combination of stored facts the operations can produce reads with the
status :func:`queuert.state.derive_status` gives it, in ``get_job``, in ``list_jobs(statuses=...)``
and in ``trigger_jobs``. A backend that derives the status in its query restates the rule; these
cases pin that restatement."""

from __future__ import annotations

from typing import get_args

from queuert.schedule import Schedule
from queuert.state import JobFilter, JobStatus, StoredJob, derive_status

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    HOUR,
    TYPE_A,
    TYPE_B,
    TYPE_C,
    WORKER,
    Ops,
    ids,
    utcnow,
)

__all__ = ["TestStatusPrecedence"]

STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)


def facts(job: StoredJob) -> str:
    parts = [
        f"outcome={job.outcome}",
        "successor" if job.succeeded_by_job_id else "",
        "leased" if job.leased_until else "",
        "blocked" if job.blocked else "",
        "future" if job.scheduled_at > utcnow() else "",
    ]
    return " ".join(p for p in parts if p)


async def build_every_combination(ops: Ops) -> dict[str, JobStatus]:
    """Jobs for each combination of facts the operations can produce (name → expected status).

    A closed job keeps ``blocked`` and a future ``scheduled_at`` when it was closed before its
    blockers or its time; a running job can be blocked when blockers are added to it."""
    expected: dict[str, JobStatus] = {}
    gate = await ops.start(TYPE_C)  # an open chain that blocks, never closed here

    async def blocked(type_name: str = TYPE_A, *, later: bool = False) -> StoredJob:
        schedule = Schedule(after=HOUR) if later else None
        return await ops.start_blocked(type_name, [gate.id], schedule=schedule)

    ready = await ops.start(TYPE_A)
    expected[ready.id] = "ready"
    scheduled = await ops.start(TYPE_A, schedule=Schedule(after=HOUR))
    expected[scheduled.id] = "scheduled"
    expected[(await blocked()).id] = "blocked"
    expected[(await blocked(later=True)).id] = "blocked"  # blocked wins over a future time

    running = await ops.start(TYPE_B)
    await ops.claim_one(running.id)
    expected[running.id] = "running"
    running_blocked = await ops.start(TYPE_B)
    await ops.claim_one(running_blocked.id)
    (added,) = await ops.adapter.add_blockers([(running_blocked.id, [gate.id])])
    assert added.job.blocked, "a blocker added to a running job marks it blocked"
    expected[running_blocked.id] = "running"  # a lease wins over blockers

    continued = await ops.start(TYPE_A)
    successor, _ = await ops.continue_with(continued, TYPE_A)
    expected[continued.id] = "continued"
    expected[successor.id] = "ready"
    continued_blocked = await blocked()
    successor_of_blocked, _ = await ops.continue_with(continued_blocked, TYPE_A)
    expected[continued_blocked.id] = "continued"
    expected[successor_of_blocked.id] = "ready"
    continued_running = await ops.start(TYPE_B)
    await ops.claim_one(continued_running.id)
    successor_of_running, _ = await ops.continue_with(continued_running, TYPE_A, worker_id=WORKER)
    expected[continued_running.id] = "continued"  # closed wins over the lease it had
    expected[successor_of_running.id] = "ready"
    continued_later = await ops.start(TYPE_A, schedule=Schedule(after=HOUR))
    successor_later, _ = await ops.continue_with(
        continued_later, TYPE_A, schedule=Schedule(after=HOUR)
    )
    expected[continued_later.id] = "continued"
    expected[successor_later.id] = "scheduled"

    completed = await ops.start(TYPE_A)
    await ops.close_job(completed.id, output=1)
    expected[completed.id] = "completed"
    completed_blocked = await blocked(later=True)
    await ops.close_job(completed_blocked.id, output=None)
    expected[completed_blocked.id] = "completed"  # closed wins over blocked and a future time
    completed_later = await ops.start(TYPE_A, schedule=Schedule(after=HOUR))
    await ops.close_job(completed_later.id, output=[1])
    expected[completed_later.id] = "completed"

    failed = await ops.start(TYPE_B)
    await ops.claim_one(failed.id)
    await ops.close_job(failed.id, "failed", worker_id=WORKER, error="boom")
    expected[failed.id] = "failed"
    failed_blocked = await blocked(later=True)
    await ops.close_job(failed_blocked.id, "failed", error="gave up")
    expected[failed_blocked.id] = "failed"

    cancelled = await ops.start(TYPE_A, schedule=Schedule(after=HOUR))
    await ops.close_job(cancelled.id, "cancelled")
    expected[cancelled.id] = "cancelled"
    cancelled_blocked = await blocked()
    await ops.close_job(cancelled_blocked.id, "cancelled")
    expected[cancelled_blocked.id] = "cancelled"
    cancelled_running = await ops.start(TYPE_B)
    await ops.claim_one(cancelled_running.id)
    await ops.close_job(cancelled_running.id, "cancelled")
    expected[cancelled_running.id] = "cancelled"

    expected[gate.id] = "ready"
    return expected


class TestStatusPrecedence:
    async def test_get_job_derives_every_combination(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        expected = await build_every_combination(ops)
        assert set(STATUSES) <= set(expected.values()), "the cases cover every status"
        for job_id, status in expected.items():
            job = await ops.job(job_id)
            assert job.status == status, (
                f"job with {facts(job)} reads as {job.status!r}, expected {status!r}"
            )
            derived = derive_status(
                outcome=job.outcome,
                succeeded_by_job_id=job.succeeded_by_job_id,
                leased_until=job.leased_until,
                blocked=job.blocked,
                scheduled_at=job.scheduled_at,
                now=utcnow(),
            )
            assert derived == status, (
                f"the stored facts of a {status!r} job ({facts(job)}) derive {derived!r}"
            )

    async def test_the_statuses_filter_derives_every_combination(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        expected = await build_every_combination(ops)
        jobs = await ops.all_jobs()
        assert {job.id: job.status for job in jobs} == expected, (
            "list_jobs reads the statuses get_job reads"
        )
        type_of = {job.id: job.type_name for job in jobs}

        async def listed(
            statuses: list[JobStatus], type_names: list[str] | None = None
        ) -> set[str]:
            f = JobFilter(statuses=statuses, type_names=type_names)
            return set(ids((await adapter.list_jobs(f, limit=1000)).items))

        for status in STATUSES:
            want = {job_id for job_id, s in expected.items() if s == status}
            assert await listed([status]) == want, f"statuses=[{status!r}]"
        assert await listed(list(STATUSES)) == set(expected)
        pair: list[JobStatus] = ["blocked", "running"]
        assert await listed(pair) == {j for j, s in expected.items() if s in pair}
        mixed: list[JobStatus] = ["scheduled", "running", "failed", "cancelled"]
        assert await listed(mixed) == {j for j, s in expected.items() if s in mixed}
        closed: list[JobStatus] = ["continued", "completed", "failed", "cancelled"]
        assert await listed(closed, [TYPE_A]) == {
            j for j, s in expected.items() if s in closed and type_of[j] == TYPE_A
        }

    async def test_only_scheduled_and_ready_jobs_are_triggered(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        expected = await build_every_combination(ops)
        for job_id, status in expected.items():
            result = await adapter.trigger_jobs([job_id])
            if status in ("scheduled", "ready"):
                assert ids(result.triggered) == [job_id], f"a {status} job is triggered"
                assert (await ops.job(job_id)).status == "ready"
            else:
                assert result.triggered == [] and result.not_triggerable == [(job_id, status)], (
                    f"a {status} job is not triggerable and reported with its status"
                )
