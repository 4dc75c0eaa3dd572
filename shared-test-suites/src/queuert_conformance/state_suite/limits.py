"""Concurrency limits: a claim never takes a job whose type, or whose (type, limit key), already
has as many running jobs as its limit; every way a job stops running frees its place."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import pytest
from queuert.limits import ConcurrencyLimit
from queuert.schedule import Schedule
from queuert.state import ClaimResult, StateAdapter, StoredJob

from queuert_conformance.applicability import require_capability
from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    LONG_LEASE,
    OTHER_WORKER,
    TYPE_A,
    TYPE_B,
    WORKER,
    Ops,
    ids,
    within,
)

__all__ = ["TestConcurrencyLimits", "TestKeyedLimits", "TestLimitKeys"]

EXPIRED = timedelta(0)


async def claim(
    adapter: StateAdapter[Any],
    limits: Mapping[str, ConcurrencyLimit],
    *types: str,
    limit: int = 100,
    worker_id: str = WORKER,
    lease: timedelta = LONG_LEASE,
) -> ClaimResult:
    return await adapter.claim_jobs(
        leases=dict.fromkeys(types or tuple(limits), lease),
        limit=limit,
        worker_id=worker_id,
        limits=limits,
    )


def running(jobs: list[StoredJob]) -> Counter[tuple[str, str | None]]:
    return Counter((j.type_name, j.limit_key) for j in jobs if j.status == "running")


class TestLimitKeys:
    async def test_the_limit_key_round_trips(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        keyed = await ops.start(TYPE_A, limit_key="customer-7")
        plain = await ops.start(TYPE_A)
        assert keyed.limit_key == "customer-7" and plain.limit_key is None
        assert (await ops.job(keyed.id)).limit_key == "customer-7"
        assert (await ops.job(plain.id)).limit_key is None
        (next_job,) = await ops.create(ops.next_job(keyed, TYPE_B, limit_key="ü 😀 k"))
        assert (await ops.job(next_job.id)).limit_key == "ü 😀 k"


class TestConcurrencyLimits:
    async def test_a_type_limit_caps_one_claim(self, queuert_state_harness: StateHarness) -> None:
        require_capability(queuert_state_harness.adapter.capabilities, "concurrency_limits")
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        jobs = [await ops.start(TYPE_A, {"i": i}) for i in range(5)]
        limits = {TYPE_A: ConcurrencyLimit(limit=2)}
        first = await claim(adapter, limits)
        assert ids(first.jobs) == ids(jobs[:2]), "the first two in claim order"
        assert first.has_more is False, "nothing else fits within the limit"
        again = await claim(adapter, limits, worker_id=OTHER_WORKER)
        assert again.jobs == [], "another claimer sees the two running jobs"
        assert again.has_more is False

    async def test_the_limit_counts_running_jobs_of_the_type_only(
        self, queuert_state_harness: StateHarness
    ) -> None:
        require_capability(queuert_state_harness.adapter.capabilities, "concurrency_limits")
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        a = [await ops.start(TYPE_A, {"i": i}) for i in range(3)]
        b = [await ops.start(TYPE_B, {"i": i}) for i in range(3)]
        await ops.claim_one(a[0].id)  # running without limits: still counts
        limits = {TYPE_A: ConcurrencyLimit(limit=2)}
        result = await claim(adapter, limits, TYPE_A, TYPE_B)
        assert ids(result.jobs) == ids([a[1], *b]), "one more A; B has no limit"

    async def test_an_expired_lease_counts_until_it_is_reaped(
        self, queuert_state_harness: StateHarness
    ) -> None:
        require_capability(queuert_state_harness.adapter.capabilities, "concurrency_limits")
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        first = await ops.start(TYPE_A, {"i": 0})
        second = await ops.start(TYPE_A, {"i": 1})
        limits = {TYPE_A: ConcurrencyLimit(limit=1)}
        assert ids((await claim(adapter, limits, lease=EXPIRED)).jobs) == [first.id]
        assert (await claim(adapter, limits)).jobs == [], "an unreaped lease still holds its place"
        assert ids(await adapter.reap_expired_leases([TYPE_A], limit=10)) == [first.id]
        assert ids((await claim(adapter, limits)).jobs) == [first.id], "reaped: its place is free"
        assert (await ops.job(second.id)).status == "ready"

    @pytest.mark.parametrize(
        "release", ["complete", "continue", "fail", "cancel", "reschedule", "reap", "delete"]
    )
    async def test_every_end_of_a_run_frees_its_place(
        self, queuert_state_harness: StateHarness, release: str
    ) -> None:
        require_capability(queuert_state_harness.adapter.capabilities, "concurrency_limits")
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        holder = await ops.start(TYPE_A, {"holder": True})
        waiting = await ops.start(TYPE_A, {"waiting": True})
        limits = {TYPE_A: ConcurrencyLimit(limit=1)}
        lease = EXPIRED if release == "reap" else LONG_LEASE
        assert ids((await claim(adapter, limits, lease=lease)).jobs) == [holder.id]
        assert (await claim(adapter, limits)).jobs == []
        await _end_run(ops, adapter, holder, release)
        result = await claim(adapter, limits)
        # a reaped job keeps its place in the claim order; a rescheduled one is due from now on
        expected = holder.id if release == "reap" else waiting.id
        assert ids(result.jobs) == [expected], f"{release} frees the place it held"

    async def test_a_claim_never_exceeds_the_limit_with_many_at_once(
        self, queuert_state_harness: StateHarness
    ) -> None:
        require_capability(queuert_state_harness.adapter.capabilities, "concurrency_limits")
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with adapter.transaction() as tx:
            await ops.create(*[ops.new_job(TYPE_A, {"i": i}) for i in range(30)], tx=tx)
        limits = {TYPE_A: ConcurrencyLimit(limit=4)}
        async with ops.other_adapter() as other:
            adapters = [adapter, other]
            for _ in range(3):
                await within(
                    asyncio.gather(
                        *(
                            claim(adapters[i % 2], limits, limit=3, worker_id=f"w{i}")
                            for i in range(8)
                        )
                    ),
                    "8 concurrent limited claims",
                )
                counts = running(await ops.all_jobs())
                assert counts[(TYPE_A, None)] <= 4, f"over the limit: {counts}"
                # finish what runs, so the next round races again
                for job in await ops.all_jobs():
                    if job.status == "running":
                        await ops.close_job(job.id)
        assert counts[(TYPE_A, None)] >= 1, "some claim got through"


class TestKeyedLimits:
    async def test_a_busy_key_does_not_hold_back_other_keys(
        self, queuert_state_harness: StateHarness
    ) -> None:
        require_capability(queuert_state_harness.adapter.capabilities, "concurrency_limits")
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        k1 = [await ops.start(TYPE_A, {"i": i}, limit_key="k1") for i in range(3)]
        k2 = await ops.start(TYPE_A, limit_key="k2")
        keyless = await ops.start(TYPE_A)
        limits = {TYPE_A: ConcurrencyLimit(key_limit=1)}
        result = await claim(adapter, limits)
        assert ids(result.jobs) == [k1[0].id, k2.id, keyless.id], (
            "one per key, past the busy key's other jobs; a job without a key is not limited"
        )
        assert result.has_more is False
        assert (await claim(adapter, limits)).jobs == [], "each key's singleton is running"
        await ops.close_job(k1[0].id, worker_id=WORKER)
        assert ids((await claim(adapter, limits)).jobs) == [k1[1].id]

    async def test_type_and_key_limits_together(self, queuert_state_harness: StateHarness) -> None:
        require_capability(queuert_state_harness.adapter.capabilities, "concurrency_limits")
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        jobs = [await ops.start(TYPE_A, {"i": i}, limit_key=f"k{i % 3}") for i in range(9)]
        limits = {TYPE_A: ConcurrencyLimit(limit=4, key_limit=2)}
        result = await claim(adapter, limits)
        # k0, k1, k2, k0 (the first four in order; each key at most twice)
        assert ids(result.jobs) == ids(jobs[:4])
        assert result.has_more is False
        counts = running(await ops.all_jobs())
        assert max(counts.values()) <= 2 and sum(counts.values()) == 4

    async def test_a_key_limit_holds_across_claimers(
        self, queuert_state_harness: StateHarness
    ) -> None:
        require_capability(queuert_state_harness.adapter.capabilities, "concurrency_limits")
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with adapter.transaction() as tx:
            await ops.create(
                *[ops.new_job(TYPE_A, {"i": i}, limit_key=f"k{i % 2}") for i in range(20)],
                tx=tx,
            )
        limits = {TYPE_A: ConcurrencyLimit(key_limit=1)}
        async with ops.other_adapter() as other:
            adapters = [adapter, other]
            await within(
                asyncio.gather(
                    *(claim(adapters[i % 2], limits, limit=2, worker_id=f"w{i}") for i in range(6))
                ),
                "6 concurrent keyed claims",
            )
        counts = running(await ops.all_jobs())
        assert all(n <= 1 for n in counts.values()), f"a singleton key ran twice: {counts}"


async def _end_run(ops: Ops, adapter: StateAdapter[Any], job: StoredJob, how: str) -> None:
    ends: dict[str, Callable[[], Awaitable[Any]]] = {
        "complete": lambda: ops.close_job(job.id, worker_id=WORKER),
        "continue": lambda: _continue(ops, job),
        "fail": lambda: ops.close_job(job.id, "failed", worker_id=WORKER, error="boom"),
        "cancel": lambda: ops.close_job(job.id, "cancelled"),
        "reschedule": lambda: adapter.reschedule_job(job.id, schedule=None, error="retry"),
        "reap": lambda: adapter.reap_expired_leases([TYPE_A], limit=10),
        "delete": lambda: adapter.delete_chains([job.chain_id]),
    }
    await ends[how]()


async def _continue(ops: Ops, job: StoredJob) -> None:
    async with ops.adapter.transaction() as tx:
        (successor,) = await ops.create(
            ops.next_job(job, TYPE_B, schedule=Schedule(after=timedelta(hours=1))), tx=tx
        )
        await ops.adapter.complete_job(
            job.id,
            outcome="completed",
            worker_id=WORKER,
            succeeded_by_job_id=successor.id,
            tx=tx,
        )
