# ruff: noqa: B023  (the closures in the loops run to completion within their own iteration)
"""Races on a real server: exclusive claims, deduplication, attaching blockers to a chain that closes
or continues concurrently, completions that race a blocker attachment.

Where a case needs one transaction to wait for another's lock, it does not sleep and hope: it watches
``pg_stat_activity`` until the other backend waits for a lock (``wait_event_type = 'Lock'``), or until
the other statement went through without waiting (the case's assertions then tell whether that was
right)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from pg_helpers import DSN, CountingProvider, Namespace, make_adapter
from queuert.ids import uuid7
from queuert.limits import ConcurrencyLimit
from queuert.schedule import Deduplication
from queuert.state import Completion, NewJob
from queuert_postgres import AsyncpgProvider, PgStateAdapter

LEASE = {"work": timedelta(minutes=5)}


def job(type_name: str = "work", **kw: Any) -> NewJob:
    return NewJob(id=uuid7(), type_name=type_name, chain_type_name=type_name, input=None, **kw)


async def _until(
    check: Callable[[asyncpg.Connection], Awaitable[bool]], what: str, timeout: float = 10.0
) -> None:
    """Re-check ``check`` on a connection of its own (each query sees the current activity) until
    it holds; fail after ``timeout`` seconds."""
    conn = await asyncpg.connect(DSN)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await check(conn):
            assert loop.time() < deadline, f"timed out after {timeout}s waiting for {what}"
            await asyncio.sleep(0.002)
    finally:
        await conn.close()


async def _waiting_for_a_lock(conn: asyncpg.Connection, pids: Collection[int]) -> set[int]:
    """Those of ``pids`` whose backend is waiting for a lock right now."""
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[]) AND wait_event_type = 'Lock'",
        list(pids),
    )
    return {row["pid"] for row in rows}


async def _someone_waits_for(conn: asyncpg.Connection, holder: int) -> bool:
    """Whether a backend is waiting for a lock that backend ``holder`` holds."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND $1 = ANY(pg_blocking_pids(pid)))",
            holder,
        )
    )


@pytest.fixture
async def adapters(namespace: Namespace) -> AsyncIterator[list[PgStateAdapter[Any]]]:
    """Four adapters (pools) over one store: four "processes"."""
    opened = [await make_adapter("asyncpg", namespace) for _ in range(4)]
    await opened[0].migrate()
    yield opened
    for adapter in opened:
        await adapter.close()


async def test_concurrent_claimers_never_share_a_job(adapters: list[PgStateAdapter[Any]]) -> None:
    await adapters[0].create_jobs([job() for _ in range(400)])
    claimed: list[str] = []

    async def claimer(adapter: PgStateAdapter[Any], worker: str) -> None:
        while True:
            result = await adapter.claim_jobs(leases=LEASE, limit=7, worker_id=worker)
            claimed.extend(j.id for j in result.jobs)
            if not result.jobs and not result.has_more:
                return

    await asyncio.gather(*(claimer(adapters[i % 4], f"w{i}") for i in range(12)))
    assert len(claimed) == 400
    assert len(set(claimed)) == 400


async def test_concurrent_starts_with_one_key_create_one_chain(
    adapters: list[PgStateAdapter[Any]],
) -> None:
    """Eight transactions start a chain with one deduplication key at once: checking for a match
    and inserting must not be two unguarded steps (both transactions would find nothing and insert).
    Each starter holds its transaction open until every other one has either sent its insert and
    waits for a lock, or got through."""
    starters = 8
    gate = asyncio.Event()
    all_in = asyncio.Event()
    pids: list[int] = []
    through: set[int] = set()

    async def others_settled(conn: asyncpg.Connection, mine: int) -> bool:
        pending = set(pids) - through - {mine}
        return pending <= await _waiting_for_a_lock(conn, pending)

    async def start(adapter: PgStateAdapter[Any]) -> tuple[str, bool]:
        async with adapter.transaction() as tx:
            pid = tx.get_server_pid()
            pids.append(pid)
            if len(pids) == starters:
                all_in.set()
            await gate.wait()
            (created,) = await adapter.create_jobs(
                [job(deduplication=Deduplication(key="nightly"))], tx=tx
            )
            through.add(pid)
            await _until(
                lambda conn: others_settled(conn, pid),
                "the other starters to wait for a lock or get through",
            )
            return created.job.id, created.deduplicated

    tasks = [asyncio.create_task(start(adapters[i % 4])) for i in range(starters)]
    await asyncio.wait_for(all_in.wait(), 10)  # every starter is inside its transaction
    gate.set()
    results = await asyncio.gather(*tasks)
    assert len({chain_id for chain_id, _ in results}) == 1
    assert sum(1 for _, deduplicated in results if not deduplicated) == 1


async def test_attaching_to_a_chain_that_closes_concurrently_never_strands(
    adapters: list[PgStateAdapter[Any]],
) -> None:
    """The dependent is either released by the closing transaction or created unblocked."""
    for _ in range(20):
        (blocker,) = await adapters[0].create_jobs([job("blocker")])
        (dependent,) = await adapters[1].create_jobs([job("dep")])

        async def attach() -> None:
            async with adapters[1].transaction() as tx:
                await adapters[1].add_blockers([(dependent.job.id, [blocker.job.id])], tx=tx)

        async def close() -> None:
            async with adapters[2].transaction() as tx:
                await adapters[2].get_job(blocker.job.id, lock=True, tx=tx)
                await adapters[2].complete_job(
                    blocker.job.id, outcome="completed", worker_id=None, tx=tx
                )

        await asyncio.gather(attach(), close())
        final = await adapters[3].get_job(dependent.job.id)
        assert final is not None and final.blocked is False, "dependent stranded as blocked"


async def test_attaching_to_a_chain_that_continues_concurrently_is_not_released_early(
    adapters: list[PgStateAdapter[Any]],
) -> None:
    """The blocker chain continues (its old tail closes with a successor) while the dependent is
    attached; the chain is still open, so the dependent must stay blocked. The attachment reads the
    chain's tail while the continuing transaction holds its lock, so it must lock the tail again
    with a fresh snapshot once it gets it, and find the successor."""
    for _ in range(20):
        (blocker,) = await adapters[0].create_jobs([job("blocker")])
        (dependent,) = await adapters[1].create_jobs([job("dep")])
        locked = asyncio.Event()
        attacher: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        attached = False

        async def continue_chain() -> None:
            async with adapters[2].transaction() as tx:
                await adapters[2].get_job(blocker.job.id, lock=True, tx=tx)
                locked.set()
                (succ,) = await adapters[2].create_jobs(
                    [
                        NewJob(
                            id=uuid7(),
                            type_name="blocker",
                            chain_type_name="blocker",
                            input=None,
                            chain_id=blocker.job.id,
                            chain_index=1,
                        )
                    ],
                    tx=tx,
                )
                pid = await attacher

                async def attacher_waits(conn: asyncpg.Connection) -> bool:
                    return attached or pid in await _waiting_for_a_lock(conn, [pid])

                await _until(attacher_waits, "the attachment to wait for the tail's lock")
                await adapters[2].complete_job(
                    blocker.job.id,
                    outcome="completed",
                    worker_id=None,
                    succeeded_by_job_id=succ.job.id,
                    tx=tx,
                )

        async def attach() -> list[str]:
            nonlocal attached
            await locked.wait()
            async with adapters[1].transaction() as tx:
                attacher.set_result(tx.get_server_pid())
                (added,) = await adapters[1].add_blockers(
                    [(dependent.job.id, [blocker.job.id])], tx=tx
                )
                attached = True
            return added.open_blocker_chain_ids

        _, open_ids = await asyncio.gather(continue_chain(), attach())
        assert open_ids == [blocker.job.id]
        final = await adapters[3].get_job(dependent.job.id)
        assert final is not None and final.status == "blocked", "released before the chain closed"
        # and closing the new tail releases it
        chain = await adapters[3].get_chain(blocker.job.id)
        assert chain is not None
        async with adapters[3].transaction() as tx:
            result = await adapters[3].complete_job(
                chain.tail.id, outcome="completed", worker_id=None, tx=tx
            )
        assert [j.id for j in result.unblocked] == [dependent.job.id]


@pytest.mark.parametrize("batch", [1, 2], ids=["one completion", "two completions"])
async def test_group_commit_racing_an_attachment_releases_the_dependent(
    adapters: list[PgStateAdapter[Any]], namespace: Namespace, batch: int
) -> None:
    """An unguarded completion (no earlier lock, e.g. the worker's batched ``complete_jobs``)
    whose statement starts while a dependent is being attached must still release it, alone
    (the one-completion statement) or in a batch (the array form)."""
    counting = CountingProvider(await AsyncpgProvider.connect(DSN))
    completer = PgStateAdapter(counting, schema=namespace.schema, table_prefix=namespace.prefix)
    try:
        await _group_commit_race(adapters, completer, counting, batch)
    finally:
        await completer.close()


async def _group_commit_race(
    adapters: list[PgStateAdapter[Any]],
    completer: PgStateAdapter[Any],
    counting: CountingProvider,
    batch: int,
) -> None:
    for _ in range(10):
        (blocker, *others) = await adapters[0].create_jobs([job() for _ in range(batch)])
        claim = await adapters[0].claim_jobs(leases=LEASE, limit=batch, worker_id="w")
        assert {j.id for j in claim.jobs} == {blocker.job.id, *(o.job.id for o in others)}
        (dependent,) = await adapters[1].create_jobs([job("dep")])
        attached = asyncio.Event()
        release = asyncio.Event()
        attacher: list[int] = []

        async def attach() -> None:
            async with adapters[1].transaction() as tx:
                attacher.append(tx.get_server_pid())
                await adapters[1].add_blockers([(dependent.job.id, [blocker.job.id])], tx=tx)
                attached.set()
                await release.wait()

        async def complete() -> None:
            await attached.wait()
            counting.take()
            completions = [Completion(blocker.job.id), *(Completion(o.job.id) for o in others)]
            task = asyncio.ensure_future(
                completer.complete_jobs(completions, worker_id="w", owner="w")
            )

            async def completion_waits(conn: asyncpg.Connection) -> bool:
                return task.done() or await _someone_waits_for(conn, attacher[0])

            await _until(completion_waits, "the completion to wait for the attachment's lock")
            release.set()
            result, *rest = await task
            assert result is not None and all(r is not None for r in rest)
            # the link committed after the completion's snapshot: a second statement released it
            # (alone: the full statement after the plain one; in a batch: the catch-up)
            assert counting.take() == 2
            assert [j.id for j in result.unblocked] == [dependent.job.id]

        await asyncio.gather(attach(), complete())
        final = await adapters[3].get_job(dependent.job.id)
        assert final is not None and final.status == "ready", (
            f"dependent is {final and final.status}"
        )


@pytest.mark.parametrize(
    ("bound", "key"),
    [(ConcurrencyLimit(limit=3), None), (ConcurrencyLimit(key_limit=3), "k")],
    ids=["type-limit", "key-limit"],
)
async def test_a_limited_claim_racing_a_committed_one_takes_nothing_and_reports_more(
    adapters: list[PgStateAdapter[Any]], bound: ConcurrencyLimit, key: str | None
) -> None:
    """The second claim's snapshot misses the first's 2 jobs, so its counts would let it take 3:
    the first claim's counter row makes it wait, and the moved counter makes it take none."""
    # more jobs than the first claim locks as candidates (a key-limited claim locks up to 4x)
    await adapters[0].create_jobs([job(limit_key=key) for _ in range(20)])
    limits = {"work": bound}
    first_claimed = asyncio.Event()
    release = asyncio.Event()
    holder: list[int] = []

    async def first() -> None:
        async with adapters[1].transaction() as tx:
            holder.append(tx.get_server_pid())
            got = await adapters[1].claim_jobs(
                leases=LEASE, limit=2, worker_id="w1", limits=limits, tx=tx
            )
            assert len(got.jobs) == 2
            first_claimed.set()
            await release.wait()

    async def second() -> None:
        await first_claimed.wait()
        task = asyncio.ensure_future(
            adapters[2].claim_jobs(leases=LEASE, limit=3, worker_id="w2", limits=limits)
        )

        async def claim_waits(conn: asyncpg.Connection) -> bool:
            return task.done() or await _someone_waits_for(conn, holder[0])

        try:
            await _until(claim_waits, "the second claim to wait for the first's counter row")
            assert not task.done(), f"the second claim did not wait for the first: {task.result()}"
        finally:
            release.set()
        late = await task
        assert late.jobs == [] and late.has_more

    await asyncio.gather(first(), second())
    rest = await adapters[3].claim_jobs(leases=LEASE, limit=5, worker_id="w3", limits=limits)
    assert len(rest.jobs) == 1 and not rest.has_more, "the limit allows one more beside the 2"
