"""transaction() and savepoint(): commit, rollback, nesting and aborted (poisoned) statements."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import pytest
from queuert.errors import TransactionAbortedError
from queuert.schedule import Deduplication, Schedule

from queuert_conformance.applicability import not_applicable, require_capability
from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    HOUR,
    TYPE_A,
    TYPE_B,
    TYPE_C,
    TYPE_D,
    WORKER,
    Boom,
    Ops,
    assert_status,
    diff_worlds,
    ids,
    world,
)

__all__ = ["TestSavepoints", "TestTransactions"]


async def assert_unchanged(ops: Ops, before: dict[str, Any], what: str) -> None:
    after = await world(ops)
    difference = diff_worlds(before, after)
    assert not difference, f"{what}:\n{difference}"


class TestTransactions:
    async def test_commit_persists(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with adapter.transaction() as tx:
            blocker = await ops.start(TYPE_B, tx=tx)
            job = await ops.start(TYPE_A, tx=tx)
            await adapter.add_blockers([(job.id, [blocker.id])], tx=tx)
        assert_status(await ops.job(job.id), "blocked")
        assert ids(await adapter.get_job_blockers(job.id)) == [blocker.id]

    async def test_the_error_is_re_raised_unchanged(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        error = Boom("mine")
        with pytest.raises(Boom) as caught:
            async with adapter.transaction() as tx:
                await adapter.create_jobs([ops.new_job(TYPE_A)], tx=tx)
                raise error
        assert caught.value is error

    async def test_rollback_leaves_nothing(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        # committed starting point: a chain to update, one to delete, one to continue, blockers
        claimable = await ops.start(TYPE_A)
        scheduled = await ops.start(TYPE_A, schedule=Schedule(after=HOUR))
        to_delete = await ops.start(TYPE_B)
        to_continue = await ops.start(TYPE_C)
        blocker = await ops.start(TYPE_B)
        dependent = await ops.start_blocked(TYPE_C, [blocker.id])
        running = await ops.start(TYPE_D, {"run": 1})
        await ops.claim_one(running.id)
        before = await world(ops)

        with pytest.raises(Boom):
            async with adapter.transaction() as tx:
                new = await ops.start(TYPE_A, {"new": True}, tx=tx)
                await adapter.add_blockers([(new.id, [to_continue.id])], tx=tx)
                claimed = await ops.claim(TYPE_A, tx=tx)
                assert claimable.id in ids(claimed.jobs)
                await adapter.trigger_jobs([scheduled.id], tx=tx)
                await adapter.delete_chains([to_delete.id], tx=tx)
                await ops.continue_with(to_continue, TYPE_A, tx=tx)
                await ops.close_job(blocker.id, output=1, tx=tx)
                assert_status(await ops.job(dependent.id, tx=tx), "ready")
                await adapter.renew_leases({running.id: HOUR}, worker_id=WORKER, tx=tx)
                await adapter.reschedule_job(running.id, schedule=None, error="x", tx=tx)
                await adapter.create_jobs(
                    [ops.new_job(TYPE_B, deduplication=Deduplication("rolled-back"))], tx=tx
                )
                raise Boom()
        await assert_unchanged(ops, before, "a rolled-back transaction left changes behind")
        # the indexes behind the queries must be consistent with the restored rows as well
        claimed = await ops.claim(TYPE_A)
        assert ids(claimed.jobs) == [claimable.id]
        assert claimed.jobs[0].attempt == 1, "a rolled-back claim does not count an attempt"
        (again,) = await adapter.create_jobs(
            [ops.new_job(TYPE_B, deduplication=Deduplication("rolled-back"))]
        )
        assert again.deduplicated is False, "a rolled-back chain must not deduplicate"
        assert await adapter.reap_expired_leases([TYPE_D], limit=10) == []
        assert_status(await ops.job(dependent.id), "blocked")

    async def test_rollback_restores_an_updated_job(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        with pytest.raises(Boom):
            async with adapter.transaction() as tx:
                await ops.close_job(job.id, output="never", tx=tx)
                raise Boom()
        stored = await ops.job(job.id)
        assert stored == job, f"rolled-back completion changed the job: {stored}"
        assert (await ops.chain(job.id)).status == "open"

    async def test_rollback_revives_deleted_chains(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        dependent = await ops.start_blocked(TYPE_A, [blocker.id])
        successor, _ = await ops.continue_with(await ops.job(dependent.id), TYPE_C)
        before = await world(ops)
        with pytest.raises(Boom):
            async with adapter.transaction() as tx:
                result = await adapter.delete_chains([dependent.id], cascade=True, tx=tx)
                assert set(ids(result.deleted)) == {dependent.id, blocker.id}
                raise Boom()
        await assert_unchanged(ops, before, "a rolled-back delete did not restore everything")
        assert ids((await adapter.list_blocked_jobs(blocker.id)).items) == [dependent.id]
        assert (await ops.chain(dependent.id)).tail.id == successor.id

    async def test_rollback_restores_blocker_state(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        job = await ops.start(TYPE_A)
        with pytest.raises(Boom):
            async with adapter.transaction() as tx:
                await adapter.add_blockers([(job.id, [blocker.id])], tx=tx)
                raise Boom()
        assert_status(await ops.job(job.id), "ready")
        assert await adapter.get_job_blockers(job.id) == []
        assert (await adapter.list_blocked_jobs(blocker.id)).items == []
        result = await ops.close_job(blocker.id)
        assert result.unblocked == [] and result.blocker_trace_contexts == []

    async def test_a_failed_batch_in_a_transaction_writes_nothing(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        existing = await ops.start(TYPE_A)
        fresh = ops.new_job(TYPE_B)
        with pytest.raises(Exception):  # noqa: B017 - DuplicateJobIdError, or what wraps it
            async with adapter.transaction() as tx:
                await adapter.create_jobs([fresh, ops.new_job(TYPE_B, id=existing.id)], tx=tx)
        assert await adapter.get_job(fresh.id) is None
        assert (await ops.job(existing.id)) == existing

    async def test_reads_in_a_transaction_see_its_writes(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with adapter.transaction() as tx:
            first = await ops.start(TYPE_A, tx=tx)
            successor, _ = await ops.continue_with(first, TYPE_B, tx=tx)
            chain = await ops.chain(first.id, tx=tx)
            assert chain.tail.id == successor.id
            assert ids((await adapter.list_chain_jobs(first.id, tx=tx)).items) == [
                first.id,
                successor.id,
            ]
            assert ids(await ops.all_chains(tx=tx)) == [first.id]
            claimed = await ops.claim(TYPE_B, tx=tx)
            assert ids(claimed.jobs) == [successor.id]


class TestSavepoints:
    async def test_released_on_success(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with adapter.transaction() as tx:
            async with adapter.savepoint(tx) as sp:
                job = await ops.start(TYPE_A, tx=sp)
            assert await adapter.get_job(job.id, tx=tx) is not None, (
                "work of a released savepoint is visible in its transaction"
            )
        assert await adapter.get_job(job.id) is not None, "... and committed with it"

    async def test_rolled_back_on_error_and_the_transaction_goes_on(
        self, queuert_state_harness: StateHarness
    ) -> None:
        require_savepoints(queuert_state_harness)
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        kept = await ops.start(TYPE_A)
        error = Boom("inside the savepoint")
        async with adapter.transaction() as tx:
            before = await ops.start(TYPE_B, tx=tx)
            with pytest.raises(Boom) as caught:
                async with adapter.savepoint(tx) as sp:
                    inner = await ops.start(TYPE_C, tx=sp)
                    await ops.close_job(kept.id, output="inner", tx=sp)
                    await ops.close_job(before.id, output="inner", tx=sp)
                    raise error
            assert caught.value is error, "the savepoint re-raises the original error"
            assert await adapter.get_job(inner.id, tx=tx) is None
            assert_status(await ops.job(kept.id, tx=tx), "ready")
            assert_status(await ops.job(before.id, tx=tx), "ready")
            after = await ops.start(TYPE_C, tx=tx)
        assert await adapter.get_job(inner.id) is None, "the savepoint's work is rolled back"
        assert_status(await ops.job(kept.id), "ready")
        assert_status(await ops.job(before.id), "ready", "work before the savepoint is kept")
        assert_status(await ops.job(after.id), "ready", "work after the savepoint is kept")

    async def test_nested_savepoints(self, queuert_state_harness: StateHarness) -> None:
        require_savepoints(queuert_state_harness)
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with adapter.transaction() as tx:
            async with adapter.savepoint(tx) as outer:
                kept = await ops.start(TYPE_A, tx=outer)
                with pytest.raises(Boom):
                    async with adapter.savepoint(outer) as inner:
                        dropped = await ops.start(TYPE_B, tx=inner)
                        raise Boom()
                async with adapter.savepoint(outer) as inner:
                    released = await ops.start(TYPE_C, tx=inner)
                assert await adapter.get_job(dropped.id, tx=outer) is None
                assert await adapter.get_job(released.id, tx=outer) is not None
            with pytest.raises(Boom):
                async with adapter.savepoint(tx) as outer:
                    async with adapter.savepoint(outer) as inner:
                        lost = await ops.start(TYPE_A, tx=inner)
                    raise Boom()
            assert await adapter.get_job(lost.id, tx=tx) is None, (
                "rolling back a savepoint discards the released savepoints inside it"
            )
        assert set(ids(await ops.all_jobs())) == {kept.id, released.id}

    async def test_rollback_restores_blocker_state_and_release(
        self, queuert_state_harness: StateHarness
    ) -> None:
        require_savepoints(queuert_state_harness)
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        dependent = await ops.start_blocked(TYPE_A, [blocker.id])
        async with adapter.transaction() as tx:
            with pytest.raises(Boom):
                async with adapter.savepoint(tx) as sp:
                    result = await ops.close_job(blocker.id, output=1, tx=sp)
                    assert ids(result.unblocked) == [dependent.id]
                    raise Boom()
            assert_status(await ops.job(dependent.id, tx=tx), "blocked")
            result = await ops.close_job(blocker.id, output=2, tx=tx)
            assert ids(result.unblocked) == [dependent.id]
        assert_status(await ops.job(dependent.id), "ready")
        assert (await ops.chain(blocker.id)).tail.output == 2

    async def test_savepoint_of_a_transaction_that_rolls_back(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        with pytest.raises(Boom):
            async with adapter.transaction() as tx:
                async with adapter.savepoint(tx) as sp:
                    job = await ops.start(TYPE_A, tx=sp)
                raise Boom()
        assert await adapter.get_job(job.id) is None, (
            "a released savepoint is still rolled back with its transaction"
        )

    async def test_poisoned_statement_is_isolated_by_its_savepoint(
        self, queuert_state_harness: StateHarness
    ) -> None:
        require_savepoints(queuert_state_harness)
        poison = require_poison(queuert_state_harness)
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with adapter.transaction() as tx:
            outer = await ops.start(TYPE_A, tx=tx)
            with pytest.raises(TransactionAbortedError):
                async with adapter.savepoint(tx) as sp:
                    inner = await ops.start(TYPE_B, tx=sp)
                    await poison(sp)
                    await adapter.get_job(outer.id, tx=sp)
                    raise AssertionError(
                        "an operation in a poisoned (aborted) savepoint succeeded; it must raise "
                        "TransactionAbortedError until the savepoint is rolled back"
                    )
            assert await adapter.get_job(inner.id, tx=tx) is None
            assert await adapter.get_job(outer.id, tx=tx) is not None, (
                "the transaction must be usable again after the poisoned savepoint rolled back"
            )
            after = await ops.start(TYPE_C, tx=tx)
        assert set(ids(await ops.all_jobs())) == {outer.id, after.id}

    async def test_poisoned_transaction_commits_nothing(
        self, queuert_state_harness: StateHarness
    ) -> None:
        poison = require_poison(queuert_state_harness)
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job_id = ops.new_id()
        later: BaseException | None = None
        with pytest.raises(TransactionAbortedError):  # ending it rolls back and says so
            async with adapter.transaction() as tx:
                await adapter.create_jobs([ops.new_job(TYPE_A, id=job_id)], tx=tx)
                with suppress(Exception):  # a caller that swallows the failed statement
                    await poison(tx)
                try:
                    await adapter.get_job(job_id, tx=tx)
                except Exception as exc:
                    later = exc
        assert isinstance(later, TransactionAbortedError), (
            f"an operation in a poisoned (aborted) transaction must raise TransactionAbortedError, "
            f"got {later!r}"
        )
        assert await adapter.get_job(job_id) is None, "a poisoned transaction must not commit"
        assert await ops.all_jobs() == []

    async def test_poison_hook_matches_the_capability(
        self, queuert_state_harness: StateHarness
    ) -> None:
        declared = queuert_state_harness.adapter.capabilities.poison_transaction
        hook = queuert_state_harness.poison is not None
        assert declared == hook, (
            f"capabilities.poison_transaction is {declared} but the harness "
            f"{'has' if hook else 'has no'} poison hook"
        )


def require_savepoints(harness: StateHarness) -> None:
    require_capability(harness.adapter.capabilities, "savepoints")


def require_poison(harness: StateHarness) -> Any:
    poison = harness.poison
    if not harness.adapter.capabilities.poison_transaction or poison is None:
        not_applicable("poison")
    return poison
