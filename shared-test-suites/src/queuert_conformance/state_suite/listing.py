"""list_chains, list_jobs, list_chain_jobs and list_blocked_jobs: filters, order and keyset cursors.

Malformed arguments (an unknown order or status, a bad limit or cursor) never reach an adapter: the
client refuses them (``behaviour_suite/test_arguments.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from queuert.schedule import Schedule
from queuert.state import ChainFilter, JobFilter, Order, Page, StoredChain, StoredJob

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    HOUR,
    TYPE_A,
    TYPE_B,
    TYPE_C,
    Ops,
    ids,
)

__all__ = ["TestListBlockedJobs", "TestListChainJobs", "TestListChains", "TestListJobs"]

T = TypeVar("T", StoredJob, StoredChain)


def by_creation(items: list[T], *, desc: bool = False) -> list[str]:
    def key(item: Any) -> tuple[Any, str]:
        job = item.root if isinstance(item, StoredChain) else item
        return (job.created_at, job.id)

    return [i.id for i in sorted(items, key=key, reverse=desc)]


async def walk(
    fetch: Callable[[str | None], Awaitable[Page[T]]], limit: int, max_pages: int = 100
) -> tuple[list[T], list[int]]:
    """Follow cursors to the end; returns the items and the page sizes."""
    items: list[T] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(max_pages):
        page = await fetch(cursor)
        assert len(page.items) <= limit, f"a page has {len(page.items)} items, limit was {limit}"
        if page.next_cursor is not None:
            assert page.items, "an empty page must not have a next_cursor"
        items.extend(page.items)
        sizes.append(len(page.items))
        cursor = page.next_cursor
        if cursor is None:
            return items, sizes
    raise AssertionError("pagination did not end")


class TestListChains:
    async def test_empty(self, queuert_state_harness: StateHarness) -> None:
        page = await queuert_state_harness.adapter.list_chains(ChainFilter())
        assert page.items == [] and page.next_cursor is None

    async def test_default_order_is_newest_first_with_root_and_tail(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        one = await ops.start(TYPE_A)
        two = await ops.start(TYPE_B)
        two_tail, _ = await ops.continue_with(two, TYPE_C)
        three = await ops.start(TYPE_A)
        page = await adapter.list_chains(ChainFilter())
        assert ids(page.items) == [three.id, two.id, one.id]
        assert page.next_cursor is None
        chain_two = page.items[1]
        assert chain_two.root.id == two.id and chain_two.tail.id == two_tail.id
        assert page.items[0].root == page.items[0].tail
        asc = await adapter.list_chains(ChainFilter(), order="asc")
        assert ids(asc.items) == [one.id, two.id, three.id]

    @pytest.mark.parametrize("order", ["asc", "desc"])
    @pytest.mark.parametrize("count", [5, 6])
    async def test_pagination_visits_every_chain_once(
        self, queuert_state_harness: StateHarness, order: Order, count: int
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        chains = [await ops.chain((await ops.start(TYPE_A, {"i": i})).id) for i in range(count)]

        async def fetch(cursor: str | None) -> Page[StoredChain]:
            return await adapter.list_chains(ChainFilter(), order=order, cursor=cursor, limit=2)

        items, sizes = await walk(fetch, 2)
        assert ids(items) == by_creation(chains, desc=order == "desc")
        assert sizes == [2] * (count // 2) + ([1] if count % 2 else []), (
            f"pages of sizes {sizes}: next_cursor must be None on the last page (no false positive)"
        )

    async def test_pagination_is_stable_when_chains_are_added(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        chains = [await ops.start(TYPE_A) for _ in range(5)]
        first = await adapter.list_chains(ChainFilter(), limit=2)
        assert ids(first.items) == [chains[4].id, chains[3].id]
        newer = await ops.start(TYPE_A)
        second = await adapter.list_chains(ChainFilter(), cursor=first.next_cursor, limit=2)
        assert ids(second.items) == [chains[2].id, chains[1].id], (
            "a keyset cursor continues after the last row seen, whatever was added since"
        )
        third = await adapter.list_chains(ChainFilter(), cursor=second.next_cursor, limit=2)
        assert ids(third.items) == [chains[0].id] and third.next_cursor is None
        assert newer.id not in ids(first.items + second.items + third.items)

    async def test_filters(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        a_open = await ops.start(TYPE_A)
        a_closed = await ops.start(TYPE_A)
        await ops.close_job(a_closed.id, output=1)
        b_open = await ops.start(TYPE_B)
        b_tail, _ = await ops.continue_with(b_open, TYPE_C)
        c_failed = await ops.start(TYPE_C)
        await ops.close_job(c_failed.id, "failed", error="x")

        async def listed(f: ChainFilter) -> set[str]:
            return set(ids((await adapter.list_chains(f, limit=100)).items))

        assert await listed(ChainFilter(type_names=[TYPE_A])) == {a_open.id, a_closed.id}
        assert await listed(ChainFilter(type_names=[TYPE_B, TYPE_C])) == {b_open.id, c_failed.id}
        assert await listed(ChainFilter(status="open")) == {a_open.id, b_open.id}, (
            "chain status is the tail's: a chain whose first job continued is open"
        )
        assert await listed(ChainFilter(status="closed")) == {a_closed.id, c_failed.id}
        assert await listed(ChainFilter(chain_ids=[a_open.id, b_open.id, ops.unknown_id()])) == {
            a_open.id,
            b_open.id,
        }
        assert await listed(ChainFilter(job_ids=[b_tail.id])) == {b_open.id}, (
            "job_ids selects the chains that contain those jobs"
        )
        assert await listed(ChainFilter(job_ids=[a_open.id, b_tail.id])) == {a_open.id, b_open.id}
        assert await listed(ChainFilter(type_names=[TYPE_A], status="open")) == {a_open.id}
        assert await listed(ChainFilter(chain_ids=[b_tail.id])) == set(), (
            "a continuation's id is not a chain id"
        )
        assert await listed(ChainFilter(type_names=[])) == set()

    async def test_root_only_excludes_blocker_chains(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        closed_blocker = await ops.start(TYPE_B)
        await ops.close_job(closed_blocker.id)
        dependent = await ops.start_blocked(TYPE_A, [blocker.id, closed_blocker.id])
        plain = await ops.start(TYPE_C)
        page = await adapter.list_chains(ChainFilter(root_only=True))
        assert set(ids(page.items)) == {dependent.id, plain.id}

    async def test_created_range(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        chains = [await ops.start(TYPE_A) for _ in range(5)]
        ordered = sorted(chains, key=lambda j: (j.created_at, j.id))
        lower, upper = ordered[1].created_at, ordered[3].created_at
        expected = {j.id for j in ordered if lower <= j.created_at < upper}
        page = await adapter.list_chains(
            ChainFilter(created_from=lower, created_to=upper), limit=100
        )
        assert set(ids(page.items)) == expected, "created_from is inclusive, created_to exclusive"
        assert ordered[1].id in expected and ordered[3].id not in expected

    async def test_filtered_pagination(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        wanted = []
        for i in range(7):
            job = await ops.start(TYPE_A if i % 2 else TYPE_B)
            if i % 2:
                wanted.append(job)

        async def fetch(cursor: str | None) -> Page[StoredChain]:
            return await adapter.list_chains(
                ChainFilter(type_names=[TYPE_A]), cursor=cursor, limit=1
            )

        items, sizes = await walk(fetch, 1)
        assert ids(items) == by_creation(wanted, desc=True)
        assert sizes == [1, 1, 1], "no trailing empty page after the last match"


class TestListJobs:
    async def test_empty(self, queuert_state_harness: StateHarness) -> None:
        page = await queuert_state_harness.adapter.list_jobs(JobFilter())
        assert page.items == [] and page.next_cursor is None

    async def test_all_jobs_across_chains_newest_first(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        a = await ops.start(TYPE_A)
        a2, _ = await ops.continue_with(a, TYPE_B)
        b = await ops.start(TYPE_C)
        jobs = [await ops.job(j.id) for j in (a, a2, b)]
        page = await adapter.list_jobs(JobFilter())
        assert ids(page.items) == by_creation(jobs, desc=True)
        assert page.items == sorted(jobs, key=lambda j: (j.created_at, j.id), reverse=True), (
            "listed jobs equal the jobs read one by one"
        )
        asc = await adapter.list_jobs(JobFilter(), order="asc")
        assert ids(asc.items) == by_creation(jobs)

    async def test_filters(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        b = await ops.start(TYPE_B)
        await ops.claim_one(b.id)
        a = await ops.start(TYPE_A)
        a2, _ = await ops.continue_with(a, TYPE_B)
        c = await ops.start(TYPE_C, schedule=Schedule(after=HOUR))
        blocked = await ops.start_blocked(TYPE_C, [c.id])

        async def listed(f: JobFilter) -> set[str]:
            return set(ids((await adapter.list_jobs(f, limit=100)).items))

        assert await listed(JobFilter(chain_ids=[a.id])) == {a.id, a2.id}
        assert await listed(JobFilter(type_names=[TYPE_B])) == {a2.id, b.id}
        assert await listed(JobFilter(chain_type_names=[TYPE_A])) == {a.id, a2.id}, (
            "chain_type_names matches the chain's type, not the job's"
        )
        assert await listed(JobFilter(job_ids=[a2.id, c.id, ops.unknown_id()])) == {a2.id, c.id}
        assert await listed(JobFilter(statuses=["continued"])) == {a.id}
        assert await listed(JobFilter(statuses=["ready"])) == {a2.id}
        assert await listed(JobFilter(statuses=["running"])) == {b.id}
        assert await listed(JobFilter(statuses=["scheduled", "blocked"])) == {c.id, blocked.id}
        assert await listed(JobFilter(type_names=[TYPE_B], statuses=["ready"])) == {a2.id}
        assert await listed(JobFilter(chain_ids=[a.id], type_names=[TYPE_A])) == {a.id}
        assert await listed(JobFilter(statuses=[])) == set()

    async def test_created_range(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        jobs = [await ops.start(TYPE_A) for _ in range(5)]
        ordered = sorted(jobs, key=lambda j: (j.created_at, j.id))
        lower, upper = ordered[1].created_at, ordered[4].created_at
        page = await adapter.list_jobs(JobFilter(created_from=lower, created_to=upper), limit=100)
        assert set(ids(page.items)) == {j.id for j in ordered if lower <= j.created_at < upper}

    @pytest.mark.parametrize("order", ["asc", "desc"])
    async def test_pagination_with_a_status_filter(
        self, queuert_state_harness: StateHarness, order: Order
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        ready = []
        for i in range(9):
            job = await ops.start(TYPE_A)
            if i % 3 == 0:
                await ops.close_job(job.id)
            else:
                ready.append(job)

        async def fetch(cursor: str | None) -> Page[StoredJob]:
            return await adapter.list_jobs(
                JobFilter(statuses=["ready"]), order=order, cursor=cursor, limit=2
            )

        items, sizes = await walk(fetch, 2)
        assert ids(items) == by_creation(ready, desc=order == "desc")
        assert sizes == [2, 2, 2]


class TestListChainJobs:
    async def test_unknown_chain(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        page = await queuert_state_harness.adapter.list_chain_jobs(ops.unknown_id())
        assert page.items == [] and page.next_cursor is None

    async def test_jobs_of_one_chain_by_index(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        first = await ops.start(TYPE_A)
        chain = [first]
        for t in (TYPE_B, TYPE_C, TYPE_A):
            successor, _ = await ops.continue_with(chain[-1], t)
            chain.append(successor)
        await ops.start(TYPE_A)  # another chain, never listed
        page = await adapter.list_chain_jobs(first.id)
        assert ids(page.items) == ids(chain), "ascending by chain_index by default"
        assert [j.chain_index for j in page.items] == [0, 1, 2, 3]
        assert page.next_cursor is None
        desc = await adapter.list_chain_jobs(first.id, order="desc")
        assert ids(desc.items) == ids(chain)[::-1]

    @pytest.mark.parametrize("order", ["asc", "desc"])
    async def test_pagination(self, queuert_state_harness: StateHarness, order: Order) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        first = await ops.start(TYPE_A)
        chain = [first]
        for _ in range(4):
            successor, _ = await ops.continue_with(chain[-1], TYPE_A)
            chain.append(successor)

        async def fetch(cursor: str | None) -> Page[StoredJob]:
            return await adapter.list_chain_jobs(first.id, order=order, cursor=cursor, limit=2)

        items, sizes = await walk(fetch, 2)
        expected = ids(chain) if order == "asc" else ids(chain)[::-1]
        assert ids(items) == expected
        assert sizes == [2, 2, 1]


class TestListBlockedJobs:
    async def test_jobs_waiting_for_a_chain(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        other = await ops.start(TYPE_B)
        d1 = await ops.start_blocked(TYPE_A, [blocker.id])
        d2 = await ops.start_blocked(TYPE_C, [other.id, blocker.id])
        await ops.start_blocked(TYPE_A, [other.id])
        page = await adapter.list_blocked_jobs(blocker.id)
        assert ids(page.items) == by_creation([d1, d2], desc=True), "newest first by default"
        assert page.next_cursor is None
        asc = await adapter.list_blocked_jobs(blocker.id, order="asc")
        assert ids(asc.items) == by_creation([d1, d2])
        await ops.close_job(blocker.id)
        after = await adapter.list_blocked_jobs(blocker.id)
        assert set(ids(after.items)) == {d1.id, d2.id}, (
            "jobs stay listed after the blocker chain closed (the links are kept)"
        )
        assert {j.id: j.status for j in after.items} == {d1.id: "ready", d2.id: "blocked"}

    async def test_blocker_of_a_continuation(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        first = await ops.start(TYPE_A)
        successor, _ = await ops.continue_with(first, TYPE_A, blockers=[blocker.id])
        page = await adapter.list_blocked_jobs(blocker.id)
        assert ids(page.items) == [successor.id]

    async def test_empty(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        assert (await adapter.list_blocked_jobs(job.id)).items == []
        assert (await adapter.list_blocked_jobs(ops.unknown_id())).items == []

    @pytest.mark.parametrize("order", ["asc", "desc"])
    async def test_pagination(self, queuert_state_harness: StateHarness, order: Order) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        blocker = await ops.start(TYPE_B)
        dependents = [await ops.start_blocked(TYPE_A, [blocker.id]) for _ in range(5)]

        async def fetch(cursor: str | None) -> Page[StoredJob]:
            return await adapter.list_blocked_jobs(blocker.id, order=order, cursor=cursor, limit=2)

        items, sizes = await walk(fetch, 2)
        assert ids(items) == by_creation(dependents, desc=order == "desc")
        assert sizes == [2, 2, 1]
