"""Pins the transactions the server ends for chains started and processed with the LISTEN/NOTIFY
adapter: its notifications travel inside the transactions that make the work visible, so the server
ends the transactions queuert's statements open (counted at the provider seam) and, for each commit
that notified, at most one more: the listening connection's backend reads the notification queue in
a short transaction of its own when it is woken (PostgreSQL's LISTEN does that, whoever publishes).

Measured from ``pg_stat_database`` of a database of the test's own, so that other clients of the
server do not count. A backend reports its counters to ``pg_stat_database`` from time to time;
``pg_stat_force_next_flush()`` on every connection makes them report before each reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from pg_helpers import DSN, new_database
from queuert import Client, EntryJobType, Worker
from queuert.observability import AttemptCompleted, Event
from queuert_postgres import AsyncpgProvider, PgNotifyAdapter, PgProvider, PgStateAdapter, Sql

CHAINS = 100
SLACK = 10
"""Transactions the server may end beyond the accounted ones: asyncpg preparing a statement for the
first time on a pool connection outside a transaction (a transaction of its own), the server's
background work (autovacuum visiting the new database). Publishing the notifications on their own
would be hundreds."""


@dataclass
class Item:
    n: int


class Ping(EntryJobType[Item, int], name="ping"):
    pass


class CountingTransactions:
    """Delegates to ``inner``; counts the transactions opened through it (an autocommit statement is
    one) and the statements that carried notifications (whether the notify adapter's publisher
    sent them in a transaction or a statement of the state adapter did: one per transaction)."""

    def __init__(self, inner: PgProvider[Any]) -> None:
        self.inner = inner
        self.transactions = 0
        self.opened = 0
        """Transactions opened with ``transaction()`` (BEGIN ... COMMIT), not autocommit statements."""
        self.notifying = 0

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        self.transactions += 1
        self.opened += 1
        return self.inner.transaction()

    async def fetch(self, sql: Sql, args: Sequence[Any], tx: Any | None) -> list[Any]:
        if tx is None:
            self.transactions += 1
        if "pg_notify" in sql.text:
            self.notifying += 1
        return await self.inner.fetch(sql, args, tx)

    async def script(self, sql: str, tx: Any) -> None:
        await self.inner.script(sql, tx)

    async def close(self) -> None:
        await self.inner.close()


class Done:
    """Observability adapter: ``done`` is set once ``target`` attempts completed."""

    def __init__(self) -> None:
        self.completed = 0
        self.target = 0
        self.done = asyncio.Event()

    def expect(self, target: int) -> None:
        self.completed, self.target = 0, target
        self.done.clear()

    def emit(self, event: Event) -> None:
        if isinstance(event, AttemptCompleted):
            self.completed += 1
            if self.completed >= self.target:
                self.done.set()


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with new_database() as dsn:
        yield dsn


async def committed(database: str) -> int:
    """Transactions the database has ended (commits and rollbacks), read from another database."""
    name = database.rsplit("/", 1)[1]
    conn = await asyncpg.connect(DSN)
    try:
        value = await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", name
        )
        return int(value)
    finally:
        await conn.close()


async def report_stats(pools: Sequence[Any], conns: Sequence[Any]) -> int:
    """Make every connection report its counters now; returns the statements this took (each is a
    transaction of the database)."""
    statements = 0
    for pool in pools:
        held = [await pool.acquire() for _ in range(pool.get_size())]
        try:
            for conn in held:
                await conn.execute("SELECT pg_stat_force_next_flush()")
                statements += 1
        finally:
            for conn in held:
                await pool.release(conn)
    for conn in conns:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        statements += 1
    return statements


async def test_listen_notify_adds_no_transactions(database: str) -> None:
    provider = CountingTransactions(await AsyncpgProvider.connect(database, min_size=2, max_size=2))
    state = PgStateAdapter(provider)
    await state.migrate()
    publishing_pool = await asyncpg.create_pool(database, min_size=1, max_size=1)
    notify = PgNotifyAdapter(database, pool=publishing_pool, ping_interval=3600)
    observed = Done()
    client: Client[Any] = Client(state, notify=notify, job_types=[Ping], observability=observed)

    def new_worker() -> Worker[Any]:
        # a poll interval far beyond the test: the worker hears of new jobs through NOTIFY alone
        worker: Worker[Any] = Worker(client, concurrency=10, poll_interval=600)

        @worker.handler(Ping)
        async def ping(attempt: Any) -> int:
            return int(attempt.job.input.n)  # an output: the worker's group commit writes it

        return worker

    pools = [provider.inner.pool, publishing_pool]  # type: ignore[attr-defined]

    def connections() -> list[Any]:
        listener = notify._conn  # the LISTEN connection
        return [listener] if listener is not None else []

    async def phase_start() -> int:
        await report_stats(pools, connections())
        provider.transactions = provider.opened = provider.notifying = 0
        return await committed(database)

    async def phase_end(before: int) -> tuple[int, int, int]:
        """(transactions the server ended, counted at the provider, commits that notified)"""
        extra = await report_stats(pools, connections())
        server = await committed(database) - before - extra
        return server, provider.transactions, provider.notifying

    worker = new_worker()
    try:
        # warm-up: the LISTEN connection and the adapter's one-time database check
        await worker.start()
        observed.expect(1)
        async with client.transaction() as tx:
            await client.start_chain(Ping(Item(-1)), tx=tx)
        await asyncio.wait_for(observed.done.wait(), 30)
        await worker.close()

        before = await phase_start()
        for n in range(CHAINS):
            async with client.transaction() as tx:
                await client.start_chain(Ping(Item(n)), tx=tx)
        server, counted, notifying = await phase_end(before)
        assert counted == CHAINS, "one transaction per chain started"
        assert notifying == CHAINS, "each carried its notification"
        assert counted <= server <= counted + notifying + SLACK, (
            f"starting {CHAINS} chains ended {server} transactions on the server; queuert opened"
            f" {counted}, {notifying} of them notified"
        )

        # without a transaction: one autocommit statement inserts the chain and sends its wake-up
        before = await phase_start()
        for n in range(CHAINS):
            await client.start_chain(Ping(Item(CHAINS + n)))
        await client.wait_published()
        server, counted, notifying = await phase_end(before)
        assert counted == CHAINS, "one statement per chain started"
        assert notifying == CHAINS, "each carried its notification"
        assert counted <= server <= counted + notifying + SLACK, (
            f"starting {CHAINS} chains without a transaction ended {server} transactions on the"
            f" server; queuert sent {counted} statements, {notifying} of them notified"
        )

        before = await phase_start()
        observed.expect(2 * CHAINS)
        worker = new_worker()
        await worker.start()
        await asyncio.wait_for(observed.done.wait(), 30)
        await worker.close()  # nothing runs meanwhile
        server, counted, notifying = await phase_end(before)
        assert notifying <= counted
        assert counted <= server <= counted + notifying + SLACK, (
            f"processing {CHAINS} jobs ended {server} transactions on the server; queuert opened"
            f" {counted}, {notifying} of them notified"
        )
        assert server <= CHAINS, f"{server / (2 * CHAINS):.2f} transactions per processed job"
        # the group commits send their chain-closed messages in their UPDATE statement: claims,
        # completions and their messages are autocommit statements, no BEGIN ... COMMIT
        assert provider.opened == 0, f"processing opened {provider.opened} transactions"
        assert notifying >= 1, "the group commits carried the chain-closed messages"
    finally:
        await worker.close()
        await client.close()
        await notify.close()
        await publishing_pool.close()
        await state.close()
