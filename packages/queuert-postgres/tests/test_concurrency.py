# ruff: noqa: B023  (the closures in the loops run to completion within their own iteration)
"""Races on a real server: exclusive claims, deduplication, attaching blockers to a chain that closes
or continues concurrently (reference §11.1, §11.10), completions that race a blocker attachment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pg_helpers import DSN, CountingProvider, Namespace, make_adapter
from queuert.ids import uuid7
from queuert.schedule import Deduplication
from queuert.state import Completion, NewJob
from queuert_postgres import AsyncpgProvider, PgStateAdapter

LEASE = {"work": timedelta(minutes=5)}


def job(type_name: str = "work", **kw: Any) -> NewJob:
    return NewJob(id=uuid7(), type_name=type_name, chain_type_name=type_name, input=None, **kw)


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
    """§11.1: check-then-insert without a lock lets concurrent transactions both insert."""
    gate = asyncio.Event()

    async def start(adapter: PgStateAdapter[Any]) -> tuple[str, bool]:
        async with adapter.transaction() as tx:
            await gate.wait()
            (created,) = await adapter.create_jobs(
                [job(deduplication=Deduplication(key="nightly"))], tx=tx
            )
            await asyncio.sleep(0.02)  # hold the transaction open so the others overlap it
            return created.job.id, created.deduplicated

    tasks = [asyncio.create_task(start(adapters[i % 4])) for i in range(8)]
    await asyncio.sleep(0.05)
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
    """§11.10: the blocker chain continues (its old tail closes with a successor) while the
    dependent is attached; the chain is still open, so the dependent must stay blocked."""
    for _ in range(20):
        (blocker,) = await adapters[0].create_jobs([job("blocker")])
        (dependent,) = await adapters[1].create_jobs([job("dep")])
        locked = asyncio.Event()

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
                await asyncio.sleep(0.02)  # the attacher now waits for the tail's lock
                await adapters[2].complete_job(
                    blocker.job.id,
                    outcome="completed",
                    worker_id=None,
                    succeeded_by_job_id=succ.job.id,
                    tx=tx,
                )

        async def attach() -> list[str]:
            await locked.wait()
            async with adapters[1].transaction() as tx:
                (added,) = await adapters[1].add_blockers(
                    [(dependent.job.id, [blocker.job.id])], tx=tx
                )
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


async def test_group_commit_racing_an_attachment_releases_the_dependent(
    adapters: list[PgStateAdapter[Any]], namespace: Namespace
) -> None:
    """An unguarded completion (no earlier lock, e.g. the worker's batched ``complete_jobs``)
    whose statement starts while a dependent is being attached must still release it."""
    counting = CountingProvider(await AsyncpgProvider.connect(DSN))
    completer = PgStateAdapter(counting, schema=namespace.schema, table_prefix=namespace.prefix)
    try:
        await _group_commit_race(adapters, completer, counting)
    finally:
        await completer.close()


async def _group_commit_race(
    adapters: list[PgStateAdapter[Any]], completer: PgStateAdapter[Any], counting: CountingProvider
) -> None:
    for _ in range(10):
        (blocker,) = await adapters[0].create_jobs([job()])
        claim = await adapters[0].claim_jobs(leases=LEASE, limit=1, worker_id="w")
        assert [j.id for j in claim.jobs] == [blocker.job.id]
        (dependent,) = await adapters[1].create_jobs([job("dep")])
        attached = asyncio.Event()
        release = asyncio.Event()

        async def attach() -> None:
            async with adapters[1].transaction() as tx:
                await adapters[1].add_blockers([(dependent.job.id, [blocker.job.id])], tx=tx)
                attached.set()
                await release.wait()

        async def complete() -> None:
            await attached.wait()
            counting.take()
            task = asyncio.ensure_future(
                completer.complete_jobs([Completion(blocker.job.id)], worker_id="w", owner="w")
            )
            await asyncio.sleep(0.05)  # the completion is now waiting for the tail's lock
            release.set()
            (result,) = await task
            assert result is not None
            # the link committed after the completion's snapshot: a catch-up statement released it
            assert counting.take() == 2
            assert [j.id for j in result.unblocked] == [dependent.job.id]

        await asyncio.gather(attach(), complete())
        final = await adapters[3].get_job(dependent.job.id)
        assert final is not None and final.status == "ready", (
            f"dependent is {final and final.status}"
        )
