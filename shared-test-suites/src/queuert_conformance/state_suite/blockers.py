"""add_blockers, get_job_blockers and the release of dependents when their blocker chains close."""

from __future__ import annotations

import itertools

import pytest
from queuert.errors import ChainNotFoundError
from queuert.schedule import Schedule
from queuert.state import Completion, JobFilter

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    HOUR,
    TYPE_A,
    TYPE_B,
    TYPE_C,
    Ops,
    assert_status,
    ids,
)

__all__ = ["TestAddBlockers", "TestGetJobBlockers", "TestUnblocking"]


class TestAddBlockers:
    async def test_open_blocker_blocks_the_job(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B, chain_trace_context="blocker-ctx")
        job = await ops.start(TYPE_A)
        (added,) = await adapter.add_blockers([(job.id, [blocker.id])])
        assert added.job.id == job.id
        assert_status(added.job, "blocked", "the job returned by add_blockers")
        assert added.job.blocked is True
        assert added.open_blocker_chain_ids == [blocker.id]
        assert added.blocker_chain_trace_contexts == ["blocker-ctx"]
        assert_status(await ops.job(job.id), "blocked", "the re-read job")

    async def test_closed_blockers_do_not_block(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        await ops.close_job(blocker.id, output={"b": 1})
        failed = await ops.start(TYPE_B)
        await ops.close_job(failed.id, "failed", error="e")
        job = await ops.start(TYPE_A)
        (added,) = await adapter.add_blockers([(job.id, [blocker.id, failed.id])])
        assert added.open_blocker_chain_ids == []
        assert added.job.blocked is False
        assert_status(added.job, "ready", "a job whose blockers are all closed")

    async def test_several_jobs_in_one_batch_mixing_blocked_and_not(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        open_chain = await ops.start(TYPE_B, chain_trace_context="open")
        closed_chain = await ops.start(TYPE_B, chain_trace_context="closed")
        await ops.close_job(closed_chain.id)
        j1 = await ops.start(TYPE_A)
        j2 = await ops.start(TYPE_A)
        j3 = await ops.start(TYPE_A)
        results = await adapter.add_blockers(
            [
                (j1.id, [open_chain.id]),
                (j2.id, [closed_chain.id]),
                (j3.id, [closed_chain.id, open_chain.id]),
            ]
        )
        assert [r.job.id for r in results] == [j1.id, j2.id, j3.id], "results in input order"
        assert [r.job.status for r in results] == ["blocked", "ready", "blocked"]
        assert [r.open_blocker_chain_ids for r in results] == [
            [open_chain.id],
            [],
            [open_chain.id],
        ]
        assert results[2].blocker_chain_trace_contexts == ["closed", "open"]

    async def test_blocker_chain_started_in_the_same_transaction(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with adapter.transaction() as tx:
            blocker = await ops.start(TYPE_B, tx=tx)
            job = await ops.start(TYPE_A, tx=tx)
            (added,) = await adapter.add_blockers([(job.id, [blocker.id])], tx=tx)
            assert added.open_blocker_chain_ids == [blocker.id]
        assert_status(await ops.job(job.id), "blocked")

    async def test_continued_blocker_chain_still_blocks(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        blocker = await ops.start(TYPE_B)
        await ops.continue_with(blocker, TYPE_C)
        job = await ops.start_blocked(TYPE_A, [blocker.id])
        assert_status(job, "blocked", "a job waiting for a chain whose first job continued")

    async def test_the_same_chain_in_several_slots(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        b1 = await ops.start(TYPE_B, chain_trace_context="c1")
        b2 = await ops.start(TYPE_B, chain_trace_context="c2")
        job = await ops.start(TYPE_A)
        (added,) = await adapter.add_blockers([(job.id, [b1.id, b2.id, b1.id])])
        assert added.blocker_chain_trace_contexts == ["c1", "c2", "c1"], "one entry per slot"
        assert set(added.open_blocker_chain_ids) == {b1.id, b2.id}
        blockers = await adapter.get_job_blockers(job.id)
        assert ids(blockers) == [b1.id, b2.id, b1.id], "slots keep their order, duplicates included"

    async def test_missing_blocker_chain_raises(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        missing = ops.unknown_id()
        with pytest.raises(ChainNotFoundError) as caught:
            await adapter.add_blockers([(job.id, [missing])])
        assert caught.value.chain_id == missing

    async def test_a_job_that_is_not_a_chain_start_is_not_a_blocker_chain(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        chain = await ops.start(TYPE_B)
        successor, _ = await ops.continue_with(chain, TYPE_C)
        job = await ops.start(TYPE_A)
        with pytest.raises(ChainNotFoundError):
            await adapter.add_blockers([(job.id, [successor.id])])

    async def test_empty_input(self, queuert_state_harness: StateHarness) -> None:
        assert await queuert_state_harness.adapter.add_blockers([]) == []

    async def test_blocker_trace_contexts_default_to_none(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        blocker = await ops.start(TYPE_B)
        job = await ops.start(TYPE_A)
        (added,) = await queuert_state_harness.adapter.add_blockers([(job.id, [blocker.id])])
        assert added.blocker_chain_trace_contexts == [None], (
            "the blocker chain has no trace context"
        )


class TestGetJobBlockers:
    async def test_blockers_in_slot_order_with_root_and_tail(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        b1 = await ops.start(TYPE_B, {"b": 1})
        b2 = await ops.start(TYPE_B, {"b": 2})
        b2_tail, _ = await ops.continue_with(b2, TYPE_C, {"b": "2b"})
        job = await ops.start_blocked(TYPE_A, [b2.id, b1.id])
        blockers = await adapter.get_job_blockers(job.id)
        assert ids(blockers) == [b2.id, b1.id]
        assert blockers[0].root.id == b2.id and blockers[0].tail.id == b2_tail.id
        assert blockers[1].root.id == blockers[1].tail.id == b1.id, "a one-job chain: root == tail"
        assert blockers[0].status == "open"

    async def test_blockers_show_closed_chains_with_their_output(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        job = await ops.start_blocked(TYPE_A, [blocker.id])
        await ops.close_job(blocker.id, output={"result": [1, 2]})
        (chain,) = await adapter.get_job_blockers(job.id)
        assert chain.status == "closed"
        assert chain.tail.output == {"result": [1, 2]}

    async def test_no_blockers_or_missing_job(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        assert await adapter.get_job_blockers(job.id) == []
        assert await adapter.get_job_blockers(ops.unknown_id()) == []


class TestUnblocking:
    async def test_closing_the_last_blocker_releases_the_job(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        b1 = await ops.start(TYPE_B)
        b2 = await ops.start(TYPE_B)
        job = await ops.start_blocked(TYPE_A, [b1.id, b2.id])
        first = await ops.close_job(b1.id, output=1)
        assert first.unblocked == [], "a job with another open blocker must stay blocked"
        assert_status(await ops.job(job.id), "blocked")
        second = await ops.close_job(b2.id, output=2)
        assert ids(second.unblocked) == [job.id]
        assert_status(second.unblocked[0], "ready", "the unblocked job as returned")
        assert second.unblocked[0].blocked is False
        assert_status(await ops.job(job.id), "ready", "the unblocked job re-read")

    @pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
    async def test_released_only_when_the_last_open_blocker_closes(
        self, queuert_state_harness: StateHarness, order: tuple[int, ...]
    ) -> None:
        """Three blocker chains closed in every order: one fills two slots, one continues before
        it closes. The job stays blocked until the last of them closes, and that close releases it."""
        ops = Ops(queuert_state_harness)
        blockers = [await ops.start(TYPE_B) for _ in range(3)]
        slots = [blockers[0].id, blockers[1].id, blockers[0].id, blockers[2].id]
        job = await ops.start_blocked(TYPE_A, slots)
        tail, continued = await ops.continue_with(blockers[2], TYPE_C)
        assert continued.unblocked == [], "a blocker chain that continues stays open"
        closing = [blockers[0].id, blockers[1].id, tail.id]
        for step, index in enumerate(order):
            result = await ops.close_job(closing[index], output=index)
            if step < len(order) - 1:
                assert result.unblocked == [], (
                    f"closing blocker {index} released the job while another was open"
                )
                assert_status(await ops.job(job.id), "blocked", f"after closing blocker {index}")
            else:
                assert ids(result.unblocked) == [job.id], "closing the last open blocker releases"
                assert_status(await ops.job(job.id), "ready", "the released job")

    async def test_closing_the_last_blockers_together_releases_each_job_once(
        self, queuert_state_harness: StateHarness
    ) -> None:
        """complete_jobs closing two blocker chains of one job in one call releases it once."""
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        b1 = await ops.start(TYPE_B)
        b2 = await ops.start(TYPE_B)
        both = await ops.start_blocked(TYPE_A, [b1.id, b2.id])
        first_only = await ops.start_blocked(TYPE_A, [b1.id])
        third = await ops.start(TYPE_B)
        still = await ops.start_blocked(TYPE_C, [b2.id, third.id])
        results = await adapter.complete_jobs(
            [Completion(b1.id, output=1), Completion(b2.id, output=2)], worker_id=None
        )
        assert all(r is not None for r in results)
        released = [j.id for r in results if r is not None for j in r.unblocked]
        assert sorted(released) == sorted([both.id, first_only.id]), (
            f"each released job appears in exactly one result, got {released}"
        )
        assert_status(await ops.job(both.id), "ready")
        assert_status(await ops.job(still.id), "blocked", "a job with another open blocker")

    async def test_continuing_a_blocker_chain_does_not_release(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        blocker = await ops.start(TYPE_B)
        job = await ops.start_blocked(TYPE_A, [blocker.id])
        tail, result = await ops.continue_with(blocker, TYPE_C)
        assert result.unblocked == [], "the blocker chain continued: it is still open"
        assert_status(await ops.job(job.id), "blocked")
        closed = await ops.close_job(tail.id, output="done")
        assert ids(closed.unblocked) == [job.id], "closing the chain's tail releases the job"

    @pytest.mark.parametrize("outcome", ["failed", "cancelled"])
    async def test_failed_or_cancelled_blocker_closes_the_chain_and_releases(
        self, queuert_state_harness: StateHarness, outcome: str
    ) -> None:
        ops = Ops(queuert_state_harness)
        blocker = await ops.start(TYPE_B)
        job = await ops.start_blocked(TYPE_A, [blocker.id])
        result = await ops.close_job(blocker.id, outcome, error="gave up")  # type: ignore[arg-type]
        assert ids(result.unblocked) == [job.id], f"a {outcome} blocker chain is closed"
        assert_status(await ops.job(job.id), "ready")
        (chain,) = await queuert_state_harness.adapter.get_job_blockers(job.id)
        assert chain.status == "closed" and chain.tail.outcome == outcome

    async def test_several_dependents_released_at_once(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        blocker = await ops.start(TYPE_B)
        other = await ops.start(TYPE_B)
        d1 = await ops.start_blocked(TYPE_A, [blocker.id])
        d2 = await ops.start_blocked(TYPE_A, [blocker.id, other.id])
        d3 = await ops.start_blocked(TYPE_C, [blocker.id])
        result = await ops.close_job(blocker.id)
        assert set(ids(result.unblocked)) == {d1.id, d3.id}
        assert_status(await ops.job(d2.id), "blocked")

    async def test_returns_the_links_trace_contexts(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        other = await ops.start(TYPE_B)
        d1 = await ops.start(TYPE_A)
        d2 = await ops.start(TYPE_A)
        await adapter.add_blockers(
            [(d1.id, [blocker.id, other.id]), (d2.id, [blocker.id])],
            trace_contexts=[["link-1", "link-other"], [None]],
        )
        result = await ops.close_job(blocker.id)
        assert sorted(result.blocker_trace_contexts) == ["link-1"], (
            "non-null trace contexts of the links pointing at the closed chain"
        )
        none = await ops.close_job((await ops.start(TYPE_B)).id)
        assert none.blocker_trace_contexts == [] and none.unblocked == []

    async def test_stale_scheduled_at_is_raised_to_now(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        blocker = await ops.start(TYPE_B)
        job = await ops.start_blocked(TYPE_A, [blocker.id])
        result = await ops.close_job(blocker.id)
        (released,) = result.unblocked
        assert result.job.completed_at is not None
        assert released.scheduled_at > job.scheduled_at, "a stale scheduled_at must move to now"
        assert released.scheduled_at >= result.job.completed_at, (
            "an unblocked job is scheduled no earlier than the moment it was released"
        )

    async def test_future_scheduled_at_is_kept(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        blocker = await ops.start(TYPE_B)
        job = await ops.start_blocked(TYPE_A, [blocker.id], schedule=Schedule(after=HOUR))
        result = await ops.close_job(blocker.id)
        (released,) = result.unblocked
        assert released.scheduled_at == job.scheduled_at
        assert_status(released, "scheduled", "an unblocked job with a future schedule")

    async def test_released_job_does_not_jump_ahead_of_ready_jobs(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        blocker = await ops.start(TYPE_B)
        waiting = await ops.start_blocked(TYPE_A, [blocker.id])
        ready = await ops.start(TYPE_A)
        await ops.close_job(blocker.id)
        claimed = await ops.claim(TYPE_A, limit=2)
        assert ids(claimed.jobs) == [ready.id, waiting.id], (
            "a job released later must queue behind jobs that were ready before it"
        )

    async def test_a_job_closed_while_blocked_is_not_released(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        blocker = await ops.start(TYPE_B)
        job = await ops.start_blocked(TYPE_A, [blocker.id])
        cancelled = await ops.close_job(job.id, "cancelled")
        assert_status(cancelled.job, "cancelled", "a blocked job cancelled workerless")
        result = await ops.close_job(blocker.id)
        assert job.id not in ids(result.unblocked), "a closed job is never returned as unblocked"
        assert_status(await ops.job(job.id), "cancelled")

    async def test_release_inside_the_closing_transaction(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        job = await ops.start_blocked(TYPE_A, [blocker.id])
        async with adapter.transaction() as tx:
            await ops.close_job(blocker.id, tx=tx)
            assert_status(await ops.job(job.id, tx=tx), "ready", "inside the closing transaction")
        ready = await ops.all_jobs(JobFilter(statuses=["ready"]))
        assert ids(ready) == [job.id]
