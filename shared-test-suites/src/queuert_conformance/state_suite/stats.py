"""get_queue_stats: open jobs counted per type and derived status, with the oldest ready job's age."""

from __future__ import annotations

from datetime import timedelta

from queuert.schedule import Schedule
from queuert.state import JobFilter, QueueStats

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    HOUR,
    TOLERANCE,
    TYPE_A,
    TYPE_B,
    TYPE_C,
    TYPE_D,
    WORKER,
    Ops,
    utcnow,
)

__all__ = ["TestQueueStats"]

EXPIRED = timedelta(0)
"""A lease that has expired as soon as it is written."""


def counts(stats: QueueStats) -> dict[str, int]:
    """The counts of ``stats`` (everything but the age)."""
    return {
        "ready": stats.ready,
        "scheduled": stats.scheduled,
        "blocked": stats.blocked,
        "running": stats.running,
        "lease_expired": stats.lease_expired,
    }


def by_type(stats: list[QueueStats]) -> dict[str, dict[str, int]]:
    return {s.type_name: counts(s) for s in stats}


async def listed_counts(ops: Ops, type_names: list[str]) -> dict[str, dict[str, int]]:
    """Open jobs per type and derived status as the listing reads them."""
    out: dict[str, dict[str, int]] = {}
    for job in await ops.all_jobs(JobFilter(type_names=type_names)):
        if job.outcome is None:
            entry = out.setdefault(
                job.type_name, {"ready": 0, "scheduled": 0, "blocked": 0, "running": 0}
            )
            entry[job.status] += 1
    return out


class TestQueueStats:
    async def test_an_empty_store(self, queuert_state_harness: StateHarness) -> None:
        adapter = queuert_state_harness.adapter
        assert await adapter.get_queue_stats() == []
        asked = await adapter.get_queue_stats([TYPE_B, TYPE_A, TYPE_B])
        assert asked == [QueueStats(TYPE_A), QueueStats(TYPE_B)], (
            "one all-zero entry per distinct type asked for, sorted by name"
        )

    async def test_counts_open_jobs_by_derived_status(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        # TYPE_A: two ready, one scheduled, one blocked, one running, one on an expired lease
        await ops.start(TYPE_A)
        await ops.start(TYPE_A)
        await ops.start(TYPE_A, schedule=Schedule(after=HOUR))
        blocker = await ops.start(TYPE_D)
        await ops.start_blocked(TYPE_A, [blocker.id])
        running = await ops.start(TYPE_B)
        await ops.claim_one(running.id)
        expired = await ops.start(TYPE_C)
        await ops.claim_one(expired.id, lease=EXPIRED)
        # closed jobs of every kind are not counted
        done = await ops.start(TYPE_B)
        await ops.close_job(done.id, output=1)
        failed = await ops.start(TYPE_B)
        await ops.close_job(failed.id, "failed", error="boom")
        continued = await ops.start(TYPE_C)
        await ops.continue_with(continued, TYPE_C, schedule=Schedule(after=HOUR))

        stats = await adapter.get_queue_stats()
        assert [s.type_name for s in stats] == sorted([TYPE_A, TYPE_B, TYPE_C, TYPE_D]), (
            "one entry per type with open jobs, sorted by name"
        )
        zero = {"ready": 0, "scheduled": 0, "blocked": 0, "running": 0, "lease_expired": 0}
        assert by_type(stats) == {
            TYPE_A: {**zero, "ready": 2, "scheduled": 1, "blocked": 1},
            TYPE_B: {**zero, "running": 1},
            TYPE_C: {**zero, "scheduled": 1, "running": 1, "lease_expired": 1},
            TYPE_D: {**zero, "ready": 1},
        }
        listed = await listed_counts(ops, [TYPE_A, TYPE_B, TYPE_C, TYPE_D])
        assert {
            s.type_name: {k: v for k, v in counts(s).items() if k != "lease_expired"} for s in stats
        } == listed, "the same counts as the statuses the listing derives"

    async def test_age_of_the_oldest_ready_job(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        oldest = await ops.start(TYPE_A)
        await ops.start(TYPE_A)
        await ops.start(TYPE_B, schedule=Schedule(after=HOUR))
        before = utcnow()
        (a, b) = await adapter.get_queue_stats([TYPE_A, TYPE_B])
        after = utcnow()
        assert a.oldest_ready_age is not None
        assert a.oldest_ready_age >= timedelta(0), "an age is never negative"
        assert (
            before - TOLERANCE <= oldest.scheduled_at + a.oldest_ready_age <= after + TOLERANCE
        ), "the age is now minus the oldest ready job's scheduled_at"
        assert b.ready == 0 and b.oldest_ready_age is None, "no ready job, no age"
        # once claimed, the oldest no longer counts: the next one's age is no older
        claimed = await ops.claim(TYPE_A, limit=1)
        assert [j.id for j in claimed.jobs] == [oldest.id]
        (again,) = await adapter.get_queue_stats([TYPE_A])
        assert again.ready == 1 and again.running == 1
        assert again.oldest_ready_age is not None

    async def test_follows_the_job_lifecycle(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        job = await ops.start_blocked(TYPE_A, [blocker.id])
        assert counts((await adapter.get_queue_stats([TYPE_A]))[0])["blocked"] == 1
        await ops.close_job(blocker.id, output=None)
        (stats,) = await adapter.get_queue_stats([TYPE_A])
        assert (stats.blocked, stats.ready) == (0, 1), "an unblocked job is ready"
        await ops.claim_one(job.id, lease=EXPIRED)
        (stats,) = await adapter.get_queue_stats([TYPE_A])
        assert (stats.ready, stats.running, stats.lease_expired) == (0, 1, 1)
        reaped = await adapter.reap_expired_leases([TYPE_A], limit=10)
        assert [j.id for j in reaped] == [job.id]
        (stats,) = await adapter.get_queue_stats([TYPE_A])
        assert (stats.ready, stats.running, stats.lease_expired) == (1, 0, 0), (
            "a reaped job is ready again"
        )
        await ops.claim_one(job.id)
        await ops.close_job(job.id, output=None, worker_id=WORKER)
        assert await adapter.get_queue_stats() == []
        assert await adapter.get_queue_stats([TYPE_A]) == [QueueStats(TYPE_A)]

    async def test_type_names_select_the_entries(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        await ops.start(TYPE_A)
        await ops.start(TYPE_B)
        stats = await adapter.get_queue_stats([TYPE_C, TYPE_B])
        assert [s.type_name for s in stats] == [TYPE_B, TYPE_C]
        assert stats[0].ready == 1
        assert stats[1] == QueueStats(TYPE_C)
        assert await adapter.get_queue_stats([]) == []

    async def test_in_a_transaction(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        await ops.start(TYPE_A)
        async with adapter.transaction() as tx:
            await ops.start(TYPE_A, tx=tx)
            (inside,) = await adapter.get_queue_stats([TYPE_A], tx=tx)
            assert inside.ready == 2, "the transaction sees its own uncommitted job"
            (outside,) = await adapter.get_queue_stats([TYPE_A])
            assert outside.ready == 1, "a read without tx sees committed jobs only"
        (committed,) = await adapter.get_queue_stats([TYPE_A])
        assert committed.ready == 2
