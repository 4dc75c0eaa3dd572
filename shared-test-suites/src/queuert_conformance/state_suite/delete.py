"""delete_chains: whole chains, all or nothing, refusing external blocker references."""

from __future__ import annotations

from queuert.errors import BlockerReference
from queuert.state import ChainFilter, JobFilter

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    LONG_LEASE,
    TYPE_A,
    TYPE_B,
    TYPE_C,
    WORKER,
    Ops,
    ids,
)

__all__ = ["TestDeleteChains"]


class TestDeleteChains:
    async def test_deletes_every_job_of_the_chain(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        first = await ops.start(TYPE_A)
        second, _ = await ops.continue_with(first, TYPE_B)
        third, _ = await ops.continue_with(second, TYPE_C)
        keep = await ops.start(TYPE_A)
        result = await adapter.delete_chains([first.id])
        assert result.references == []
        assert ids(result.deleted) == [first.id]
        assert result.deleted[0].root.id == first.id and result.deleted[0].tail.id == third.id
        for job_id in (first.id, second.id, third.id):
            assert await adapter.get_job(job_id) is None, (
                f"job {job_id} of the deleted chain remains"
            )
        assert await adapter.get_chain(first.id) is None
        assert ids(await ops.all_jobs()) == [keep.id], "other chains are untouched"

    async def test_missing_and_non_chain_ids_are_skipped(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        first = await ops.start(TYPE_A)
        second, _ = await ops.continue_with(first, TYPE_B)
        target = await ops.start(TYPE_A)
        result = await adapter.delete_chains([ops.unknown_id(), second.id, target.id])
        assert ids(result.deleted) == [target.id]
        assert await adapter.get_job(second.id) is not None, "a non-first job id is not a chain id"
        assert (await adapter.delete_chains([])).deleted == []

    async def test_a_chain_blocking_an_outside_job_is_refused(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        other = await ops.start(TYPE_C)
        dependent = await ops.start_blocked(TYPE_A, [blocker.id])
        result = await adapter.delete_chains([blocker.id, other.id])
        assert result.deleted == [], "nothing is deleted when a reference exists"
        assert result.references == [BlockerReference(blocker.id, dependent.id)]
        assert await adapter.get_job(blocker.id) is not None
        assert await adapter.get_job(other.id) is not None, "all or nothing"

    async def test_a_closed_blocker_is_still_referenced(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        dependent = await ops.start_blocked(TYPE_A, [blocker.id])
        await ops.close_job(blocker.id, output=1)
        result = await adapter.delete_chains([blocker.id])
        assert result.references == [BlockerReference(blocker.id, dependent.id)], (
            "a dependent keeps its (closed) blocker: its handler reads the blocker's output"
        )

    async def test_deleting_dependent_and_blocker_together(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        dependent = await ops.start_blocked(TYPE_A, [blocker.id])
        result = await adapter.delete_chains([dependent.id, blocker.id])
        assert result.references == []
        assert set(ids(result.deleted)) == {dependent.id, blocker.id}
        assert await ops.all_jobs() == []

    async def test_deleting_a_dependent_removes_its_blocker_links(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        dependent = await ops.start_blocked(TYPE_A, [blocker.id])
        result = await adapter.delete_chains([dependent.id])
        assert ids(result.deleted) == [dependent.id]
        assert (await adapter.list_blocked_jobs(blocker.id)).items == []
        assert ids((await adapter.delete_chains([blocker.id])).deleted) == [blocker.id], (
            "once its dependent is gone, the blocker chain can be deleted"
        )

    async def test_cascade_deletes_the_blocker_chains(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        b1 = await ops.start(TYPE_B)
        b2 = await ops.start(TYPE_B)
        dependent = await ops.start_blocked(TYPE_A, [b1.id, b2.id])
        unrelated = await ops.start(TYPE_C)
        result = await adapter.delete_chains([dependent.id], cascade=True)
        assert result.references == []
        assert set(ids(result.deleted)) == {dependent.id, b1.id, b2.id}
        assert ids(await ops.all_jobs()) == [unrelated.id]

    async def test_cascade_is_transitive_and_deletes_diamonds_once(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        bottom = await ops.start(TYPE_C)
        left = await ops.start_blocked(TYPE_B, [bottom.id])
        right = await ops.start_blocked(TYPE_B, [bottom.id])
        top = await ops.start_blocked(TYPE_A, [left.id, right.id])
        result = await adapter.delete_chains([top.id], cascade=True)
        deleted = ids(result.deleted)
        assert sorted(deleted) == sorted([top.id, left.id, right.id, bottom.id]), (
            f"each chain of the diamond is deleted exactly once, got {deleted}"
        )
        assert await ops.all_jobs() == []

    async def test_every_deleted_chain_is_returned_exactly_once(
        self, queuert_state_harness: StateHarness
    ) -> None:
        """Ids given twice, a chain both asked for and reached by the cascade, and a diamond: each
        chain is deleted and returned once (in no particular order: the client sorts)."""
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        bottom = await ops.start(TYPE_C)
        left = await ops.start_blocked(TYPE_B, [bottom.id])
        right = await ops.start_blocked(TYPE_B, [bottom.id, left.id])
        top = await ops.start_blocked(TYPE_A, [left.id, right.id, left.id])
        plain = await ops.start(TYPE_A)
        result = await adapter.delete_chains(
            [top.id, plain.id, left.id, top.id, bottom.id, plain.id], cascade=True
        )
        assert result.references == []
        deleted = ids(result.deleted)
        assert sorted(deleted) == sorted([top.id, left.id, right.id, bottom.id, plain.id]), (
            f"every chain of the set exactly once, got {deleted}"
        )
        assert all(c.root.id == c.id and c.status == "open" for c in result.deleted)
        assert await ops.all_jobs() == []
        again = await adapter.delete_chains([plain.id, plain.id])
        assert again.deleted == [] and again.references == []

    async def test_deleted_chains_show_root_and_tail(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        first = await ops.start(TYPE_A)
        tail, _ = await ops.continue_with(first, TYPE_B)
        await ops.close_job(tail.id, output={"x": 1})
        single = await ops.start(TYPE_C)
        result = await adapter.delete_chains([single.id, first.id, first.id])
        by_id = {c.id: c for c in result.deleted}
        assert sorted(by_id) == sorted([first.id, single.id]) and len(result.deleted) == 2
        assert by_id[first.id].root.id == first.id and by_id[first.id].tail.id == tail.id
        assert by_id[first.id].status == "closed" and by_id[first.id].tail.output == {"x": 1}
        assert by_id[single.id].root.id == by_id[single.id].tail.id == single.id

    async def test_cascade_follows_blockers_of_continuations(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        root_blocker = await ops.start(TYPE_C)
        first = await ops.start_blocked(TYPE_A, [root_blocker.id])
        await ops.close_job(root_blocker.id)
        later_blocker = await ops.start(TYPE_C)
        successor, _ = await ops.continue_with(first, TYPE_B, blockers=[later_blocker.id])
        nested = await ops.start(TYPE_C)
        await ops.continue_with((await ops.job(successor.id)), TYPE_B, blockers=[nested.id])
        result = await adapter.delete_chains([first.id], cascade=True)
        assert result.references == []
        assert set(ids(result.deleted)) == {
            first.id,
            root_blocker.id,
            later_blocker.id,
            nested.id,
        }, "cascade must follow the blockers of every job of the chain, continuations included"
        assert await ops.all_jobs() == []

    async def test_cascade_with_an_external_reference_deletes_nothing(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        shared = await ops.start(TYPE_C)
        mine = await ops.start_blocked(TYPE_A, [shared.id])
        theirs = await ops.start_blocked(TYPE_B, [shared.id])
        result = await adapter.delete_chains([mine.id], cascade=True)
        assert result.deleted == []
        assert result.references == [BlockerReference(shared.id, theirs.id)]
        assert len(await ops.all_jobs()) == 3

    async def test_cascade_without_blockers_is_a_plain_delete(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        keep = await ops.start(TYPE_A)
        result = await adapter.delete_chains([job.id], cascade=True)
        assert ids(result.deleted) == [job.id]
        assert ids(await ops.all_jobs()) == [keep.id]

    async def test_deleted_chains_vanish_from_every_query(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        await ops.claim_one(job.id)
        await adapter.delete_chains([job.id])
        assert await ops.all_chains(ChainFilter()) == []
        assert await ops.all_jobs(JobFilter(chain_ids=[job.id])) == []
        assert (await adapter.list_chain_jobs(job.id)).items == []
        assert await adapter.reap_expired_leases([TYPE_A], limit=10) == []
        renewal = await adapter.renew_leases({job.id: LONG_LEASE}, worker_id=WORKER)
        assert renewal.lost == [job.id], "a worker running a deleted job loses its lease"

    async def test_in_a_transaction(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        async with adapter.transaction() as tx:
            result = await adapter.delete_chains([job.id], tx=tx)
            assert ids(result.deleted) == [job.id]
            assert await adapter.get_job(job.id, tx=tx) is None
        assert await adapter.get_job(job.id) is None
