"""Pins the number of statements (round trips) each hot-path operation sends, so it cannot grow
silently. Counted at the provider seam, inside one caller transaction where the caller has one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from pg_helpers import DSN, CountingProvider, Namespace
from queuert import Client, EntryJobType
from queuert.ids import uuid7
from queuert.schedule import Deduplication
from queuert.state import Completion, NewJob
from queuert_postgres import AsyncpgProvider, PgStateAdapter

LEASE = {"work": timedelta(minutes=5)}


@pytest.fixture
async def counted(
    namespace: Namespace,
) -> AsyncIterator[tuple[PgStateAdapter[Any], CountingProvider]]:
    provider = CountingProvider(await AsyncpgProvider.connect(DSN))
    adapter = PgStateAdapter(provider, schema=namespace.schema, table_prefix=namespace.prefix)
    await adapter.migrate()
    provider.take()
    yield adapter, provider
    await adapter.close()


def job(type_name: str = "work", **kw: Any) -> NewJob:
    return NewJob(id=uuid7(), type_name=type_name, chain_type_name=type_name, input={"n": 1}, **kw)


async def test_statement_counts_per_operation(
    counted: tuple[PgStateAdapter[Any], CountingProvider],
) -> None:
    adapter, provider = counted

    # create: one statement per batch, whatever its size
    async with adapter.transaction() as tx:
        created = await adapter.create_jobs([job() for _ in range(100)], tx=tx)
        assert provider.take() == 1
        # + one for the blockers of the whole batch
        blocker = await adapter.create_jobs([job("blocker")], tx=tx)
        dependents = await adapter.create_jobs([job("dep") for _ in range(10)], tx=tx)
        provider.take()
        await adapter.add_blockers([(d.job.id, [blocker[0].job.id]) for d in dependents], tx=tx)
        assert provider.take() == 1
        # + one to take the deduplication locks (only when a key is given)
        await adapter.create_jobs(
            [job(deduplication=Deduplication(key=f"k{i}")) for i in range(10)], tx=tx
        )
        assert provider.take() == 2
    assert len(created) == 100

    # claim: one statement for a whole batch, lease and attempt included
    claim = await adapter.claim_jobs(leases=LEASE, limit=50, worker_id="w1")
    assert len(claim.jobs) == 50 and claim.has_more
    assert provider.take() == 1

    # renew: one statement for all of a worker's jobs
    renewal = await adapter.renew_leases(
        {j.id: timedelta(minutes=5) for j in claim.jobs}, worker_id="w1"
    )
    assert len(renewal.renewed) == 50
    assert provider.take() == 1

    # complete (guarded, closing the chain): one statement
    await adapter.complete_job(
        claim.jobs[0].id, outcome="completed", worker_id="w1", owner="w1", output=1
    )
    assert provider.take() == 1

    # a batch of completions: one statement
    results = await adapter.complete_jobs(
        [Completion(j.id, output={"ok": True}) for j in claim.jobs[1:]], worker_id="w1", owner="w1"
    )
    assert all(r is not None for r in results)
    assert provider.take() == 1

    # completing a blocker chain and releasing its 10 dependents: one statement
    async with adapter.transaction() as tx:
        result = await adapter.complete_job(
            blocker[0].job.id, outcome="completed", worker_id=None, tx=tx
        )
        assert len(result.unblocked) == 10
        assert provider.take() == 1

    # continuation: create successor (1) + close predecessor (1)
    (root,) = await adapter.create_jobs([job("loop")])
    provider.take()
    async with adapter.transaction() as tx:
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
        assert provider.take() == 2

    # reaping a batch, the next-due probe: one statement each
    await adapter.reap_expired_leases(["work"], limit=100)
    assert provider.take() == 1
    await adapter.next_due(["work", "dep"])
    assert provider.take() == 1
    await adapter.get_queue_stats()
    assert provider.take() == 1
    await adapter.get_queue_stats(["work", "dep"])
    assert provider.take() == 1
    # a locked read of a chain: one statement
    async with adapter.transaction() as tx:
        await adapter.get_chain(root.job.id, lock=True, tx=tx)
        assert provider.take() == 1


async def test_has_more_has_no_false_positive(
    counted: tuple[PgStateAdapter[Any], CountingProvider],
) -> None:
    adapter, _ = counted
    await adapter.create_jobs([job() for _ in range(3)])
    first = await adapter.claim_jobs(leases=LEASE, limit=2, worker_id="w")
    assert len(first.jobs) == 2 and first.has_more
    last = await adapter.claim_jobs(leases=LEASE, limit=1, worker_id="w")
    assert len(last.jobs) == 1
    assert last.has_more is False, "taking the last ready job must not report more"
    assert (await adapter.claim_jobs(leases=LEASE, limit=5, worker_id="w")).jobs == []


@dataclass
class Item:
    n: int


class Work(EntryJobType[Item, None], name="work"):
    pass


async def test_a_start_without_a_transaction_is_one_statement(
    counted: tuple[PgStateAdapter[Any], CountingProvider],
) -> None:
    adapter, provider = counted
    async with Client(adapter, job_types=[Work]) as client:
        chain = await client.start_chain(Work(Item(1)))
        assert len(provider.statements) == 1 and provider.transactions == 0, provider.statements
        assert await adapter.get_job(chain.id) is not None
        provider.take()
        # in the caller's transaction: the INSERT and nothing else
        async with client.transaction() as tx:
            provider.take()
            await client.start_chain(Work(Item(2)), tx=tx)
            assert provider.take() == 1
