"""Pins the number of statements (round trips) each hot-path operation sends, so it cannot grow
silently. Counted at the provider seam, inside one caller transaction where the caller has one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from pg_helpers import DSN, CountingProvider, Namespace
from queuert import Attempt, Client, EntryJobType, TxContext, Worker
from queuert.ids import uuid7
from queuert.schedule import Deduplication
from queuert.state import Completion, NewJob
from queuert_postgres import AsyncpgProvider, PgNotifyAdapter, PgStateAdapter

LEASE = {"work": timedelta(minutes=5)}


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

    # completing a blocker chain and releasing its 10 dependents: the plain completion finds
    # dependents and closes nothing, the full statement closes and releases
    async with adapter.transaction() as tx:
        result = await adapter.complete_job(
            blocker[0].job.id, outcome="completed", worker_id=None, tx=tx
        )
        assert len(result.unblocked) == 10
        assert provider.take() == 2

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
        assert provider.statements == [adapter.sql.create_one_alone.text], provider.statements
        assert provider.transactions == 0
        assert await adapter.get_job(chain.id) is not None
        provider.take()
        # in the caller's transaction: the INSERT and nothing else
        async with client.transaction() as tx:
            provider.take()
            await client.start_chain(Work(Item(2)), tx=tx)
            assert provider.take() == 1


async def test_a_start_without_a_transaction_sends_its_wake_up_in_its_statement(
    counted: tuple[PgStateAdapter[Any], CountingProvider],
) -> None:
    """With the LISTEN/NOTIFY adapter on the same database, the INSERT of a start without a
    transaction also sends its wake-up: one statement, no transaction, nothing published after."""
    adapter, provider = counted
    async with (
        PgNotifyAdapter(DSN, channel_prefix="qtroundtrip") as notify,
        Client(adapter, job_types=[Work], notify=notify) as client,
    ):
        await client.start_chain(Work(Item(0)))  # the first asks which database the notify is on
        provider.take()
        for n in range(3):
            await client.start_chain(Work(Item(n)))
            assert provider.statements == [adapter.sql.create_one_notify.text]
            assert provider.transactions == 0
            provider.take()
        await client.start_chains([Work(Item(n)) for n in range(100)])
        assert provider.statements == [adapter.sql.create_first_notify_alone.text]
        assert provider.transactions == 0


class Write(EntryJobType[Item, int], name="write"):
    pass


class CountingTx(CountingProvider):
    """Also records each transaction's BEGIN and COMMIT (or ROLLBACK) as the statements they are."""

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        inner = super().transaction()
        statements = self.statements

        @asynccontextmanager
        async def counted() -> AsyncIterator[Any]:
            statements.append("BEGIN")
            try:
                async with inner as tx:
                    yield tx
            finally:
                statements.append("COMMIT")

        return counted()


@pytest.mark.parametrize("process", ["atomic", "staged"])
async def test_a_prepared_job_writing_one_row_takes_four_statements(
    namespace: Namespace, process: str
) -> None:
    """The exactly-once path as ``tools/bench`` runs it: the handler inserts one row of its own in
    the job's transaction (``prepare("atomic", insert)``, or ``complete(insert)`` after
    ``prepare("staged")``) and the job completes in it. Per job that is BEGIN, the handler's INSERT,
    the guarded completion and COMMIT; the claim is shared by the jobs it takes."""
    jobs = 20
    provider = CountingTx(await AsyncpgProvider.connect(DSN))
    adapter = PgStateAdapter(provider, schema=namespace.schema, table_prefix=namespace.prefix)
    await adapter.migrate()
    table = f'"{namespace.schema}".bench_row'
    async with adapter.transaction() as tx:
        await tx.execute(f"CREATE TABLE {table} (job_id text PRIMARY KEY, n integer NOT NULL)")
    done = asyncio.Event()
    inserts = 0

    async with Client(adapter, job_types=[Write]) as client:
        worker: Worker[Any] = Worker(client, concurrency=1, poll_interval=600)

        async def insert(ctx: TxContext[Any], attempt: Attempt[Write]) -> int:
            nonlocal inserts
            inserts += 1
            await ctx.tx.execute(
                f"INSERT INTO {table} (job_id, n) VALUES ($1, $2)", attempt.job.id, attempt.input.n
            )
            return attempt.input.n

        @worker.handler(Write)
        async def write(attempt: Attempt[Write]) -> int | None:
            if process == "atomic":
                await attempt.prepare("atomic", lambda ctx: insert(ctx, attempt))
                result = attempt.input.n
            else:
                await attempt.prepare("staged")
                await attempt.complete(lambda ctx: insert(ctx, attempt))
                result = None
            if attempt.input.n == jobs - 1:
                done.set()
            return result

        await client.start_chains([Write(Item(n)) for n in range(jobs)])
        provider.take()
        async with worker:
            await asyncio.wait_for(done.wait(), 30)
        # the worker's own rounds (claims, reaping, the probe for the next due job) are not per job
        rounds = {adapter.sql.claim.text, adapter.sql.reap.text, adapter.sql.next_due.text}
        per_job = [s for s in provider.statements if s not in rounds]
        async with adapter.transaction() as tx:
            assert await tx.fetchval(f"SELECT count(*) FROM {table}") == jobs
    assert inserts == jobs
    # the handler's INSERT runs on the transaction's connection, past the provider: + 1 per job
    assert (len(per_job) + inserts) / jobs == 4, per_job
    assert per_job.count("BEGIN") == jobs, "one transaction per job"
    assert not [s for s in per_job if "SAVEPOINT" in s], "no savepoint: the callback runs first"
