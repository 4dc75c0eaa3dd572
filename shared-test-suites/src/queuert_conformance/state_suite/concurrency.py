"""Races: parallel transactions, claims, deduplication, continuations, blockers and row locks.

Each case starts a competitor while a transaction is open and gives it a moment to reach its blocking
point (``settle``). The checks hold whether the competitor ran before, during or after the transaction,
so a race between two transactions of one adapter that serialises them would pass trivially. The
competitor therefore uses a second adapter over the same store (another "process", ``open_another``),
where even a backend whose adapter serialises its own transactions must really lock; without that hook
those cases are not applicable. A race inside one adapter needs ``concurrent_transactions``.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import pytest
from queuert.schedule import Deduplication, DeduplicationScope
from queuert.state import CreatedJob, JobFilter, StateAdapter, StoredChain, StoredJob

from queuert_conformance.applicability import not_applicable, require_capability
from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    LONG_LEASE,
    TYPE_A,
    TYPE_B,
    TYPE_C,
    Boom,
    Competitor,
    Ops,
    assert_status,
    ids,
    new_job,
    settle,
    within,
)

__all__ = ["TestConcurrency"]

ROUNDS = 3
"""Each race is run a few times; the interleavings differ between rounds."""


class TestConcurrency:
    async def test_parallel_transactions_all_commit(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        async with ops.other_adapter() as other:

            async def writer(adapter: StateAdapter[Any], i: int) -> str:
                async with adapter.transaction() as tx:
                    (created,) = await adapter.create_jobs([ops.new_job(TYPE_A, {"i": i})], tx=tx)
                    await asyncio.sleep(0)
                    return created.job.id

            adapters = [queuert_state_harness.adapter, other]
            written = await within(
                asyncio.gather(*(writer(adapters[i % 2], i) for i in range(12))),
                "12 parallel transactions",
            )
        stored = await ops.all_jobs()
        assert sorted(ids(stored)) == sorted(written)

    async def test_parallel_reads_and_writes_do_not_deadlock(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        seed = [await ops.start(TYPE_A, {"seed": i}) for i in range(5)]

        async def write(i: int) -> None:
            async with adapter.transaction() as tx:
                await adapter.create_jobs([ops.new_job(TYPE_B, {"w": i})], tx=tx)
                await settle()

        async def read() -> None:
            for job in seed:
                assert (await ops.job(job.id)).input == job.input
            page = await adapter.list_jobs(JobFilter(type_names=[TYPE_A]), limit=100)
            assert len(page.items) == 5

        await within(
            asyncio.gather(*(write(i) for i in range(4)), *(read() for _ in range(8))),
            "transactions mixed with non-transactional reads",
        )
        assert len(await ops.all_jobs()) == 9

    async def test_concurrent_claims_never_return_a_job_twice(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        jobs = [await ops.start(TYPE_A, {"i": i}) for i in range(30)]
        async with ops.other_adapter() as other:

            async def claimer(adapter: StateAdapter[Any], n: int) -> list[str]:
                got: list[str] = []
                while True:
                    if n % 2:
                        async with adapter.transaction() as tx:
                            result = await adapter.claim_jobs(
                                leases={TYPE_A: LONG_LEASE}, limit=3, worker_id=f"w{n}", tx=tx
                            )
                            await asyncio.sleep(0)
                    else:
                        result = await adapter.claim_jobs(
                            leases={TYPE_A: LONG_LEASE}, limit=3, worker_id=f"w{n}"
                        )
                    got.extend(ids(result.jobs))
                    if not result.jobs:
                        return got

            adapters = [queuert_state_harness.adapter, other]
            results = await within(
                asyncio.gather(*(claimer(adapters[n % 2], n) for n in range(6))),
                "6 concurrent claimers",
            )
        claimed = [job_id for got in results for job_id in got]
        duplicates = {j for j in claimed if claimed.count(j) > 1}
        assert not duplicates, f"jobs claimed twice: {sorted(duplicates)}"
        assert sorted(claimed) == sorted(ids(jobs)), "every ready job is claimed exactly once"
        for n, got in enumerate(results):
            for job_id in got:
                assert (await ops.job(job_id)).leased_by == f"w{n}"

    @pytest.mark.parametrize("scope", ["open", "any"])
    async def test_deduplication_race_creates_one_chain(
        self, queuert_state_harness: StateHarness, scope: DeduplicationScope
    ) -> None:
        adapter = queuert_state_harness.adapter
        ops = Ops(queuert_state_harness)
        async with ops.other_adapter() as other:
            for round_ in range(ROUNDS):
                key = f"race-{round_}"

                async def start(a: StateAdapter[Any], key: str) -> CreatedJob:
                    async with a.transaction() as tx:
                        (created,) = await a.create_jobs(
                            [ops.new_job(TYPE_A, deduplication=Deduplication(key, scope=scope))],
                            tx=tx,
                        )
                        return created

                async with Competitor(
                    partial(start, other, key), "the competing deduplicated start"
                ) as rival:
                    async with adapter.transaction() as tx:
                        (first,) = await adapter.create_jobs(
                            [ops.new_job(TYPE_A, deduplication=Deduplication(key, scope=scope))],
                            tx=tx,
                        )
                        rival.go()
                        await settle()
                    second = await rival.result()
                assert not first.deduplicated
                assert second.deduplicated, (
                    "two concurrent transactions starting the same deduplication key created two "
                    "chains (the check must be race-free: lock the key or use a unique index)"
                )
                assert second.job.id == first.job.id
        chains = await ops.all_chains()
        assert len(chains) == ROUNDS, f"expected one chain per key, found {len(chains)}"

    async def test_concurrent_continuations_at_one_position_insert_one_job(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with ops.other_adapter() as other:
            for _ in range(ROUNDS):
                first = await ops.start(TYPE_A)

                async def add(a: StateAdapter[Any], first: StoredJob) -> CreatedJob:
                    async with a.transaction() as tx:
                        (created,) = await a.create_jobs([ops.next_job(first, TYPE_B)], tx=tx)
                        return created

                async with Competitor(
                    partial(add, other, first), "the competing continuation"
                ) as rival:
                    async with adapter.transaction() as tx:
                        (mine,) = await adapter.create_jobs([ops.next_job(first, TYPE_B)], tx=tx)
                        rival.go()
                        await settle()
                    theirs = await rival.result()
                assert not mine.deduplicated and theirs.deduplicated, (
                    "two concurrent continuations at one (chain_id, chain_index) must insert one job"
                )
                assert theirs.job.id == mine.job.id
                page = await adapter.list_chain_jobs(first.id)
                assert len(page.items) == 2

    async def test_a_blocker_chain_closing_while_blockers_are_added(
        self, queuert_state_harness: StateHarness
    ) -> None:
        """The closer commits first: the dependent must not be left blocked (stranded)."""
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with ops.other_adapter() as other:
            for _ in range(ROUNDS):
                blocker = await ops.start(TYPE_B)
                async with Competitor(
                    partial(_start_blocked, other, blocker.id),
                    "add_blockers racing a closing blocker chain",
                ) as linker:
                    async with adapter.transaction() as tx:
                        chain = await adapter.get_chain(blocker.id, lock=True, tx=tx)
                        assert chain is not None
                        await adapter.complete_job(
                            chain.tail.id, outcome="completed", worker_id=None, output=1, tx=tx
                        )
                        linker.go()
                        await settle()
                    dependent = await linker.result()
                stored = await ops.job(dependent.id)
                assert_status(stored, "ready", "a job whose blocker chain closed concurrently")

    async def test_blockers_added_while_the_blocker_chain_closes(
        self, queuert_state_harness: StateHarness
    ) -> None:
        """The linker commits first: the closer must see its link and release the dependent."""
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with ops.other_adapter() as other:
            for _ in range(ROUNDS):
                blocker = await ops.start(TYPE_B)
                async with Competitor(
                    partial(_close_chain, other, blocker.id),
                    "a blocker chain closing while blockers are added",
                ) as closer:
                    async with adapter.transaction() as tx:
                        (created,) = await adapter.create_jobs([ops.new_job(TYPE_A)], tx=tx)
                        (added,) = await adapter.add_blockers(
                            [(created.job.id, [blocker.id])], tx=tx
                        )
                        assert added.open_blocker_chain_ids == [blocker.id]
                        closer.go()
                        await settle()
                    result = await closer.result()
                assert ids(result.unblocked) == [created.job.id], (
                    "the closing transaction must release a dependent linked concurrently"
                )
                assert_status(await ops.job(created.job.id), "ready")

    async def test_a_blocker_chain_continuing_while_blockers_are_added(
        self, queuert_state_harness: StateHarness
    ) -> None:
        """The chain continues (stays open): the dependent must not be released early."""
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with ops.other_adapter() as other:
            for _ in range(ROUNDS):
                blocker = await ops.start(TYPE_B)
                async with Competitor(
                    partial(_start_blocked, other, blocker.id),
                    "add_blockers racing a continuing blocker chain",
                ) as linker:
                    async with adapter.transaction() as tx:
                        chain = await adapter.get_chain(blocker.id, lock=True, tx=tx)
                        assert chain is not None
                        (successor,) = await adapter.create_jobs(
                            [ops.next_job(chain.tail, TYPE_C)], tx=tx
                        )
                        await adapter.complete_job(
                            chain.tail.id,
                            outcome="completed",
                            worker_id=None,
                            succeeded_by_job_id=successor.job.id,
                            tx=tx,
                        )
                        linker.go()
                        await settle()
                    dependent = await linker.result()
                assert_status(
                    await ops.job(dependent.id),
                    "blocked",
                    "a job whose blocker chain continued (is still open)",
                )
                result = await ops.close_job(successor.job.id, output=2)
                assert ids(result.unblocked) == [dependent.id]

    async def test_a_locked_read_waits_for_the_lock_holder(
        self, queuert_state_harness: StateHarness
    ) -> None:
        require_locking(queuert_state_harness)
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        chain_start = await ops.start(TYPE_B)
        async with ops.other_adapter() as other:

            async def read_job() -> StoredJob | None:
                async with other.transaction() as tx:
                    return await other.get_job(job.id, lock=True, tx=tx)

            async def read_chain() -> StoredChain | None:
                async with other.transaction() as tx:
                    return await other.get_chain(chain_start.id, lock=True, tx=tx)

            async with (
                Competitor(read_job, "a locked get_job behind a lock holder") as job_reader,
                Competitor(read_chain, "a locked get_chain behind a lock holder") as chain_reader,
            ):
                async with adapter.transaction() as tx:
                    await adapter.get_job(job.id, lock=True, tx=tx)
                    await adapter.get_chain(chain_start.id, lock=True, tx=tx)
                    job_reader.go()
                    chain_reader.go()
                    await settle()
                    await adapter.reschedule_job(job.id, schedule=None, error="holder", tx=tx)
                    await ops.continue_with(chain_start, TYPE_C, tx=tx)
                    await settle()
                seen_job = await job_reader.result()
                seen_chain = await chain_reader.result()
        assert seen_job is not None and seen_chain is not None
        assert seen_job.last_attempt_error == "holder", (
            "a locked read must wait for the holder's commit and then see its update"
        )
        assert seen_chain.tail.id != chain_start.id, (
            "a locked chain read must wait for the holder's commit and return the new tail"
        )

    async def test_claims_skip_rows_locked_by_another_transaction(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        locked = await ops.start(TYPE_A)
        free = await ops.start(TYPE_A)
        concurrent = adapter.capabilities.concurrent_transactions
        async with (
            ops.other_adapter() as other,
            Competitor(
                lambda: other.claim_jobs(leases={TYPE_A: LONG_LEASE}, limit=10, worker_id="w2"),
                "a claim while another transaction holds a row lock (must skip it, not wait)",
            ) as claimer,
        ):
            async with adapter.transaction() as tx:
                await adapter.get_job(locked.id, lock=True, tx=tx)
                claimer.go()
                if concurrent:
                    during = await claimer.result(seconds=10)
                    assert ids(during.jobs) == [free.id], (
                        "a claim must skip the row locked by another transaction"
                    )
                else:
                    await settle()
            result = await claimer.result()
        if concurrent:
            after = await ops.claim(TYPE_A)
            assert ids(after.jobs) == [locked.id], "the skipped row is claimable once unlocked"
        else:
            # transactions are serialised: the claim ran after the holder committed
            assert sorted(ids(result.jobs)) == sorted([locked.id, free.id])

    async def test_writes_without_tx_survive_a_concurrent_rollback(
        self, queuert_state_harness: StateHarness
    ) -> None:
        require_capability(queuert_state_harness.adapter.capabilities, "concurrent_transactions")
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        outside = ops.new_job(TYPE_B)
        async with Competitor(
            lambda: adapter.create_jobs([outside]), "a write without tx next to a transaction"
        ) as writer:
            with pytest.raises(Boom):
                async with adapter.transaction() as tx:
                    (inside,) = await adapter.create_jobs([ops.new_job(TYPE_A)], tx=tx)
                    writer.go()
                    await settle()
                    raise Boom()
            await writer.result()
        assert await adapter.get_job(inside.job.id) is None
        assert await adapter.get_job(outside.id) is not None, (
            "a write made outside the transaction must not be rolled back with it"
        )


def require_locking(harness: StateHarness) -> None:
    caps = harness.adapter.capabilities
    if caps.concurrent_transactions and not caps.row_locks:
        not_applicable("row_locks")


async def _start_blocked(adapter: StateAdapter[Any], blocker_id: str) -> StoredJob:
    async with adapter.transaction() as tx:
        (created,) = await adapter.create_jobs([new_job(adapter.ids, TYPE_A)], tx=tx)
        (added,) = await adapter.add_blockers([(created.job.id, [blocker_id])], tx=tx)
        return added.job


async def _close_chain(adapter: StateAdapter[Any], chain_id: str) -> Any:
    async with adapter.transaction() as tx:
        chain = await adapter.get_chain(chain_id, lock=True, tx=tx)
        assert chain is not None
        return await adapter.complete_job(
            chain.tail.id, outcome="completed", worker_id=None, output=1, tx=tx
        )
