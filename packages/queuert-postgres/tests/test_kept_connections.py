"""``AsyncpgProvider`` keeps the connections of its finished transactions for its next ones instead of
handing them back to the pool each time: the next transaction reuses one, a reference to an ended
transaction's connection fails as after a release, a failed block still rolls back, a caller waiting
while every connection is out gets the next one finished, and every kept connection goes back to
the pool when it stays unused or the provider closes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from pg_helpers import DSN
from queuert_postgres import AsyncpgProvider

GUARD = 10.0
"""Seconds a step may take before the test fails instead of hanging."""


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(DSN, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), GUARD)


@pytest.fixture
async def kept(pool: asyncpg.Pool) -> AsyncIterator[AsyncpgProvider]:
    """A provider over ``pool`` that keeps its connections, closed after the test."""
    provider = AsyncpgProvider(pool, keep_connections=True)
    try:
        yield provider
    finally:
        await asyncio.wait_for(provider.close(), GUARD)


def _all_idle(pool: asyncpg.Pool) -> bool:
    return bool(pool.get_idle_size() == pool.get_size())


async def _until_idle(pool: asyncpg.Pool) -> None:
    """Return once every connection of the pool is back in it; fail after :data:`GUARD` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD
    while not _all_idle(pool):
        assert loop.time() < deadline, "a connection stayed out of the pool"
        await asyncio.sleep(0.005)


async def test_the_next_transaction_reuses_the_connection_and_close_returns_it(
    pool: asyncpg.Pool,
) -> None:
    provider = AsyncpgProvider(pool, keep_connections=True)
    pids = set()
    for _ in range(5):
        async with provider.transaction() as tx:
            pids.add(await tx.fetchval("SELECT pg_backend_pid()"))
    assert len(pids) == 1
    assert not _all_idle(pool)  # kept by the provider, not back in the pool
    await asyncio.wait_for(provider.close(), GUARD)
    assert _all_idle(pool)


async def test_an_unused_kept_connection_goes_back_to_the_pool(
    pool: asyncpg.Pool, kept: AsyncpgProvider
) -> None:
    async with kept.transaction() as tx:
        await tx.execute("SELECT 1")
    await _until_idle(pool)


async def test_a_reference_past_the_transaction_fails_and_never_joins_the_next(
    kept: AsyncpgProvider,
) -> None:
    async with kept.transaction() as first:
        await first.execute("SELECT 1")
    async with kept.transaction() as second:
        with pytest.raises(asyncpg.InterfaceError):
            await first.execute("SELECT 1")
        assert await second.fetchval("SELECT 42") == 42


async def test_a_statement_prepared_in_an_ended_transaction_fails_in_the_next(
    kept: AsyncpgProvider,
) -> None:
    async with kept.transaction() as first:
        statement = await first.prepare("SELECT 1")
        assert await statement.fetchval() == 1
    async with kept.transaction() as second:
        with pytest.raises(asyncpg.InterfaceError):
            await statement.fetchval()
        assert await second.fetchval("SELECT 42") == 42


async def test_a_failing_block_rolls_back_and_the_connection_serves_the_next(
    kept: AsyncpgProvider,
) -> None:
    table = "queuert_kept_rollback"
    async with kept.transaction() as tx:
        await tx.execute(f"CREATE TEMP TABLE {table} (n int) ON COMMIT PRESERVE ROWS")
    with pytest.raises(RuntimeError):
        async with kept.transaction() as tx:
            await tx.execute(f"INSERT INTO {table} VALUES (1)")
            raise RuntimeError("handler failed")
    async with kept.transaction() as tx:
        # the same session (a temporary table is per connection), without the row
        assert await tx.fetchval(f"SELECT count(*) FROM {table}") == 0


async def test_a_waiting_transaction_gets_the_next_finished_connection() -> None:
    provider = await AsyncpgProvider.connect(DSN, min_size=1, max_size=1)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def first() -> int:
        async with provider.transaction() as tx:
            entered.set()
            await release.wait()
            value: int = await tx.fetchval("SELECT 1")
            return value

    async def second() -> int:
        await entered.wait()
        async with provider.transaction() as tx:
            value: int = await tx.fetchval("SELECT 2")
            return value

    try:
        one = asyncio.ensure_future(first())
        two = asyncio.ensure_future(second())
        await asyncio.wait_for(entered.wait(), GUARD)
        release.set()
        assert await asyncio.wait_for(asyncio.gather(one, two), GUARD) == [1, 2]
    finally:
        await asyncio.wait_for(provider.close(), GUARD)


async def test_a_cancelled_waiter_leaves_no_connection_out(pool: asyncpg.Pool) -> None:
    provider = AsyncpgProvider(pool, keep_connections=True)
    held = [await pool.acquire(), await pool.acquire()]  # the pool has none left
    try:
        waiter = asyncio.ensure_future(provider.transaction().__aenter__())
        await asyncio.sleep(0)  # the waiter starts waiting
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        for conn in held:
            await pool.release(conn)
        async with provider.transaction() as tx:
            assert await tx.fetchval("SELECT 3") == 3
    finally:
        await asyncio.wait_for(provider.close(), GUARD)
    assert _all_idle(pool)


async def test_a_pool_of_the_application_is_not_kept_from_by_default(pool: asyncpg.Pool) -> None:
    provider = AsyncpgProvider(pool)
    try:
        async with provider.transaction() as tx:
            await tx.execute("SELECT 1")
        assert _all_idle(pool)
    finally:
        await asyncio.wait_for(provider.close(), GUARD)


async def test_connect_without_keeping_releases_every_connection() -> None:
    provider = await AsyncpgProvider.connect(DSN, min_size=1, max_size=2, keep_connections=False)
    try:
        async with provider.transaction() as tx:
            await tx.execute("SELECT 1")
        assert _all_idle(provider.pool)
    finally:
        await asyncio.wait_for(provider.close(), GUARD)
