"""get_job, get_chain and next_due."""

from __future__ import annotations

from datetime import timedelta

from queuert.schedule import Schedule

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    HOUR,
    TYPE_A,
    TYPE_B,
    TYPE_C,
    Ops,
    assert_status,
)

__all__ = ["TestGetChain", "TestGetJob", "TestNextDue"]


class TestGetJob:
    async def test_unknown_id(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        assert await adapter.get_job(ops.unknown_id()) is None
        assert await adapter.get_job(ops.unknown_id(), lock=False) is None

    async def test_locked_read_in_a_transaction(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A, {"x": 1})
        async with adapter.transaction() as tx:
            locked = await adapter.get_job(job.id, lock=True, tx=tx)
            assert locked == job, "a locked read returns the same row"
            assert await adapter.get_job(ops.unknown_id(), lock=True, tx=tx) is None

    async def test_statuses_of_a_chain_over_its_life(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        job = await ops.start(TYPE_A)
        assert_status(await ops.job(job.id), "ready")
        await ops.claim_one(job.id)
        assert_status(await ops.job(job.id), "running")
        successor, _ = await ops.continue_with(job, TYPE_B)
        assert_status(await ops.job(job.id), "continued")
        assert_status(await ops.job(successor.id), "ready")
        await ops.close_job(successor.id, output=[1])
        assert_status(await ops.job(successor.id), "completed")


class TestGetChain:
    async def test_single_job_chain(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        for lock in (False, True):
            if lock:
                async with adapter.transaction() as tx:
                    chain = await adapter.get_chain(job.id, lock=True, tx=tx)
            else:
                chain = await adapter.get_chain(job.id)
            assert chain is not None
            assert chain.id == job.id
            assert chain.root == job and chain.tail == job, "a one-job chain: root is the tail"
            assert chain.status == "open"

    async def test_multi_job_chain(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        first = await ops.start(TYPE_A)
        second, _ = await ops.continue_with(first, TYPE_B)
        third, _ = await ops.continue_with(second, TYPE_C)
        chain = await ops.chain(first.id)
        assert chain.root.id == first.id and chain.tail.id == third.id
        assert chain.status == "open"
        async with adapter.transaction() as tx:
            locked = await adapter.get_chain(first.id, lock=True, tx=tx)
            assert locked is not None and locked.tail.id == third.id
        await ops.close_job(third.id, output={"final": True})
        chain = await ops.chain(first.id)
        assert chain.status == "closed" and chain.tail.output == {"final": True}

    async def test_unknown_or_not_a_chain_start(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        assert await adapter.get_chain(ops.unknown_id()) is None
        first = await ops.start(TYPE_A)
        second, _ = await ops.continue_with(first, TYPE_B)
        assert await adapter.get_chain(second.id) is None, (
            "get_chain of a job that is not a chain's first job must return None"
        )

    async def test_chain_status_follows_the_outcome(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        for outcome in ("completed", "failed", "cancelled"):
            job = await ops.start(TYPE_A)
            await ops.close_job(job.id, outcome)
            chain = await ops.chain(job.id)
            assert chain.status == "closed", f"a chain closed as {outcome} is closed"
            assert chain.tail.outcome == outcome


class TestNextDue:
    async def test_none_without_jobs(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        assert await adapter.next_due([TYPE_A]) is None
        await ops.start(TYPE_B)
        assert await adapter.next_due([TYPE_A]) is None, "jobs of other types do not count"

    async def test_zero_when_a_job_is_ready(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        await ops.start(TYPE_A)
        assert await queuert_state_harness.adapter.next_due([TYPE_A]) == timedelta(0)

    async def test_time_until_the_earliest_scheduled_job(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        await ops.start(TYPE_A, schedule=Schedule(after=2 * HOUR))
        await ops.start(TYPE_B, schedule=Schedule(after=HOUR))
        due = await adapter.next_due([TYPE_A, TYPE_B])
        assert due is not None
        assert HOUR - timedelta(seconds=30) <= due <= HOUR, f"next_due is {due}, expected about 1h"
        due_a = await adapter.next_due([TYPE_A])
        assert due_a is not None and due_a > HOUR, "only the requested types count"

    async def test_earliest_due_time_whatever_its_priority(
        self, queuert_state_harness: StateHarness
    ) -> None:
        """The earliest job may have neither the highest nor the lowest priority of its type: a
        store that orders ready jobs by priority first must still find it."""
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        for priority, after in ((9, 3 * HOUR), (5, 4 * HOUR), (5, HOUR), (0, 2 * HOUR)):
            await ops.start(TYPE_A, priority=priority, schedule=Schedule(after=after))
        await ops.start(TYPE_B, priority=7, schedule=Schedule(after=HOUR / 2))
        due = await adapter.next_due([TYPE_A])
        assert due is not None
        assert HOUR - timedelta(seconds=30) <= due <= HOUR, f"next_due is {due}, expected about 1h"
        due = await adapter.next_due([TYPE_A, TYPE_B])
        assert due is not None and due <= HOUR / 2, f"next_due is {due}, expected at most 30min"
        await ops.start(TYPE_A, priority=-3)
        assert await adapter.next_due([TYPE_A]) == timedelta(0), "a ready job of any priority"

    async def test_ignores_blocked_running_and_closed_jobs(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        await ops.start_blocked(TYPE_A, [blocker.id])
        running = await ops.start(TYPE_A)
        await ops.claim_one(running.id)
        closed = await ops.start(TYPE_C)
        await ops.close_job(closed.id)
        assert await adapter.next_due([TYPE_A, TYPE_C]) is None
        await ops.start(TYPE_A, schedule=Schedule(after=HOUR))
        due = await adapter.next_due([TYPE_A, TYPE_C])
        assert due is not None and due > HOUR - timedelta(seconds=30)

    async def test_inside_a_transaction(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with adapter.transaction() as tx:
            await adapter.create_jobs([ops.new_job(TYPE_A)], tx=tx)
            assert await adapter.next_due([TYPE_A], tx=tx) == timedelta(0)
