"""Pins the number of round trips each hot-path operation costs, so it cannot grow silently.
Counted at the provider seam (a round trip may carry several statements); ``BEGIN`` and ``COMMIT``
of the adapter's own transactions count too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from mysql_helpers import CountingProvider, connect_args, drop_prefix, unique_prefix
from queuert.ids import uuid7
from queuert.schedule import Deduplication, Schedule
from queuert.state import Completion, NewJob
from queuert_mysql import AiomysqlProvider, MysqlStateAdapter

LEASE = {"work": timedelta(minutes=5)}


@pytest.fixture
async def counted() -> AsyncIterator[tuple[MysqlStateAdapter[Any], CountingProvider]]:
    prefix = unique_prefix()
    provider = CountingProvider(await AiomysqlProvider.connect(**connect_args()))
    adapter = MysqlStateAdapter(provider, table_prefix=prefix)
    await adapter.migrate()
    provider.take()
    yield adapter, provider
    await adapter.close()
    await drop_prefix(prefix)


def job(type_name: str = "work", **kw: Any) -> NewJob:
    return NewJob(id=uuid7(), type_name=type_name, chain_type_name=type_name, input={"n": 1}, **kw)


async def test_statement_counts_per_operation(
    counted: tuple[MysqlStateAdapter[Any], CountingProvider],
) -> None:
    adapter, provider = counted

    async with adapter.transaction() as tx:
        provider.take()
        # create: one INSERT per batch, whatever its size, with the read of the server's clock it
        # used sent in the same round trip
        created = await adapter.create_jobs([job() for _ in range(100)], tx=tx)
        assert provider.take() == 1
        blocker = await adapter.create_jobs([job("blocker")], tx=tx)
        dependents = await adapter.create_jobs([job("dep") for _ in range(10)], tx=tx)
        provider.take()
        # blockers of a whole batch: lock the chains, lock the jobs, read their links, insert the
        # links, count the open blockers up, read the jobs back
        await adapter.add_blockers([(d.job.id, [blocker[0].job.id]) for d in dependents], tx=tx)
        assert provider.take() == 6
        # with deduplication keys: the clock, the dedup-lock rows, the look-up of matching chains
        # and the INSERT
        await adapter.create_jobs(
            [job(deduplication=Deduplication(key=f"k{i}")) for i in range(10)], tx=tx
        )
        assert provider.take() == 4
    provider.take()
    assert len(created) == 100

    # claim: BEGIN, one locking read for the whole batch, one UPDATE, COMMIT
    claim = await adapter.claim_jobs(leases=LEASE, limit=50, worker_id="w1")
    assert len(claim.jobs) == 50 and claim.has_more
    assert provider.take() == 4

    # renew: BEGIN, one read of held and lockable leases, one UPDATE, COMMIT
    renewal = await adapter.renew_leases(
        {j.id: timedelta(minutes=5) for j in claim.jobs}, worker_id="w1"
    )
    assert len(renewal.renewed) == 50
    assert provider.take() == 4

    # complete (guarded, closing the chain): BEGIN, lock, UPDATE, read of the links, COMMIT
    await adapter.complete_job(
        claim.jobs[0].id, outcome="completed", worker_id="w1", owner="w1", output=1
    )
    assert provider.take() == 5

    # a batch of 49 completions: the same five statements
    results = await adapter.complete_jobs(
        [Completion(j.id, output={"ok": True}) for j in claim.jobs[1:]], worker_id="w1", owner="w1"
    )
    assert all(r is not None for r in results)
    assert provider.take() == 5

    # closing a blocker chain and releasing its 10 dependents (in the caller's transaction):
    # lock, UPDATE, links, lock the dependents, count them down, read the released ones
    async with adapter.transaction() as tx:
        provider.take()
        result = await adapter.complete_job(
            blocker[0].job.id, outcome="completed", worker_id=None, tx=tx
        )
        assert len(result.unblocked) == 10
        assert provider.take() == 6

    # continuation: create the successor (clock, position look-up, INSERT) + close the
    # predecessor (lock, UPDATE: a continued chain stays open, no links to read)
    (root,) = await adapter.create_jobs([job("loop")])
    async with adapter.transaction() as tx:
        provider.take()
        (succ,) = await adapter.create_jobs(
            [
                NewJob(
                    id=uuid7(),
                    type_name="loop",
                    chain_type_name="loop",
                    input=None,
                    chain_id=root.job.chain_id,
                    chain_index=1,
                )
            ],
            tx=tx,
        )
        await adapter.complete_job(
            root.job.id, outcome="completed", worker_id=None, succeeded_by_job_id=succ.job.id, tx=tx
        )
        assert provider.take() == 5

    # reaping a batch: BEGIN, one locking read, COMMIT (nothing expired: no UPDATE)
    provider.take()
    await adapter.reap_expired_leases(["work"], limit=100)
    assert provider.take() == 3
    # the next-due probe: one statement for every type while a job is due
    await adapter.next_due(["work", "dep"])
    assert provider.take() == 1
    # else one more per distinct priority (down the claim index), and one that finds no lower one
    later = Schedule(after=timedelta(hours=1))
    await adapter.create_jobs([job("later", schedule=later, priority=p) for p in (1, 2, 2)])
    provider.take()
    await adapter.next_due(["later"])
    assert provider.take() == 3


async def test_has_more_has_no_false_positive(
    counted: tuple[MysqlStateAdapter[Any], CountingProvider],
) -> None:
    adapter, _ = counted
    await adapter.create_jobs([job() for _ in range(3)])
    first = await adapter.claim_jobs(leases=LEASE, limit=2, worker_id="w")
    assert len(first.jobs) == 2 and first.has_more
    last = await adapter.claim_jobs(leases=LEASE, limit=1, worker_id="w")
    assert len(last.jobs) == 1
    assert last.has_more is False, "taking the last ready job must not report more"
    assert (await adapter.claim_jobs(leases=LEASE, limit=5, worker_id="w")).jobs == []
