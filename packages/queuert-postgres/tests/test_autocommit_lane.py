"""``AsyncpgProvider``'s statements without ``tx`` share one pooled connection while they follow one
another (a kept connection, or the lane without kept connections): every answer is the statement's
own, the connection goes back to the pool once the statements stop, concurrent statements take
other connections, and a cancelled or failing statement, or a close in the middle of one, leaves
neither a connection out of the pool nor a broken provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from pg_helpers import DSN
from queuert_postgres import AsyncpgProvider, Sql

ECHO = Sql("SELECT $1::int, pg_backend_pid()")
SLEEP = Sql("SELECT pg_sleep($1::float8), $2::int")
GUARD = 10.0
"""Seconds a step may take before the test fails instead of hanging."""


@pytest.fixture(params=[True, False], ids=["kept", "lane"])
async def provider(request: pytest.FixtureRequest) -> AsyncIterator[AsyncpgProvider]:
    """With kept connections (the default) and without (the lane)."""
    provider = await AsyncpgProvider.connect(
        DSN, min_size=1, max_size=2, keep_connections=request.param
    )
    try:
        yield provider
    finally:
        await asyncio.wait_for(provider.close(), GUARD)


async def _all_idle(provider: AsyncpgProvider) -> None:
    """Return once every connection of the pool is back in it (re-checked every event loop
    iteration); fail after :data:`GUARD` seconds."""
    pool = provider.pool
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD
    while pool.get_idle_size() != pool.get_size():
        assert loop.time() < deadline, "a connection stayed out of the pool"
        await asyncio.sleep(0)


async def _running(marker: str) -> None:
    """Return once a statement containing ``marker`` runs on the server; fail after :data:`GUARD`
    seconds."""
    conn = await asyncpg.connect(DSN)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GUARD
        while not await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
            f"%{marker}%",
        ):
            assert loop.time() < deadline, f"{marker} never ran"
            await asyncio.sleep(0.002)
    finally:
        await conn.close()


async def test_statements_in_a_row_share_a_connection_and_return_it(
    provider: AsyncpgProvider,
) -> None:
    answers = [await provider.fetch(ECHO, [i], None) for i in range(20)]
    assert [rows[0][0] for rows in answers] == list(range(20))
    assert len({rows[0][1] for rows in answers}) == 1
    await _all_idle(provider)
    # both connections can be held by transactions at once: the lane is not kept
    assert len(await asyncio.wait_for(_two_transactions(provider), GUARD)) == 2


async def _two_transactions(provider: AsyncpgProvider) -> set[int]:
    async with provider.transaction() as one, provider.transaction() as two:
        return {
            await one.fetchval("SELECT pg_backend_pid()"),
            await two.fetchval("SELECT pg_backend_pid()"),
        }


async def test_concurrent_statements_take_other_connections(provider: AsyncpgProvider) -> None:
    answers = await asyncio.wait_for(
        asyncio.gather(*(provider.fetch(SLEEP, [0.01, i], None) for i in range(20))), GUARD
    )
    assert [rows[0][1] for rows in answers] == list(range(20))
    await _all_idle(provider)


@pytest.mark.parametrize("keep", [True, False], ids=["kept", "lane"])
async def test_statements_in_a_row_leave_a_one_connection_pool_to_a_waiting_transaction(
    keep: bool,
) -> None:
    """With one connection in the pool, a loop of statements that never pauses does not keep it
    from a transaction waiting for it: the lane goes back whenever the pool has none to give (a
    kept connection goes to the waiting transaction)."""
    provider = await AsyncpgProvider.connect(DSN, min_size=1, max_size=1, keep_connections=keep)
    stop, holding = asyncio.Event(), asyncio.Event()

    async def loop_of_statements() -> None:
        statements = 0
        while not stop.is_set():
            await provider.fetch(ECHO, [statements], None)
            statements += 1
            if statements == 3:  # the loop holds the lane
                holding.set()

    async def transaction() -> int:
        async with provider.transaction() as tx:
            value: int = await tx.fetchval("SELECT 41 + 1")
        stop.set()
        return value

    try:
        looping = asyncio.ensure_future(loop_of_statements())
        await asyncio.wait_for(holding.wait(), GUARD)
        assert await asyncio.wait_for(transaction(), GUARD) == 42
        await asyncio.wait_for(looping, GUARD)
    finally:
        stop.set()
        await asyncio.wait_for(provider.close(), GUARD)


async def test_a_cancelled_statement_hands_the_lane_back(provider: AsyncpgProvider) -> None:
    await provider.fetch(ECHO, [1], None)  # the lane is taken
    task = asyncio.ensure_future(
        provider.fetch(Sql("SELECT pg_sleep(30), 'lane-cancel'"), [], None)
    )
    await _running("lane-cancel")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await asyncio.wait_for(provider.fetch(ECHO, [7], None), GUARD))[0][0] == 7
    await _all_idle(provider)


async def test_a_failing_statement_hands_the_lane_back(provider: AsyncpgProvider) -> None:
    await provider.fetch(ECHO, [1], None)
    with pytest.raises(asyncpg.DivisionByZeroError):
        await provider.fetch(Sql("SELECT 1 / 0"), [], None)
    assert (await provider.fetch(ECHO, [2], None))[0][0] == 2
    await _all_idle(provider)


@pytest.mark.parametrize("keep", [True, False], ids=["kept", "lane"])
async def test_close_during_a_statement_on_the_lane(keep: bool) -> None:
    provider = await AsyncpgProvider.connect(DSN, min_size=1, max_size=2, keep_connections=keep)
    task = asyncio.ensure_future(
        provider.fetch(Sql("SELECT pg_sleep(0.2), 'lane-close'"), [], None)
    )
    await _running("lane-close")
    await asyncio.wait_for(provider.close(), GUARD)
    assert (await task)[0][1] == "lane-close"
