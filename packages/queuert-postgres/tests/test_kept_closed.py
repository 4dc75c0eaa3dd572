"""A connection the asyncpg provider keeps between its transactions that the server closes
meanwhile is not handed out again: the next transaction gets a working connection."""

from __future__ import annotations

import asyncio

from pg_helpers import DSN, terminate_backend
from queuert_postgres import AsyncpgProvider, Sql


async def test_a_kept_connection_closed_meanwhile_is_not_reused() -> None:
    provider = await AsyncpgProvider.connect(DSN, min_size=1, max_size=2)
    try:
        async with provider.transaction() as tx:
            pid = await tx.fetchval("SELECT pg_backend_pid()")
        parking = provider._parking
        assert parking is not None and len(parking._kept) == 1, "the connection is kept"
        closed = asyncio.Event()
        kept, _ = parking._kept[0]
        kept.add_termination_listener(lambda _conn: closed.set())
        await terminate_backend(pid)
        await asyncio.wait_for(closed.wait(), 10)
        async with provider.transaction() as tx:
            assert await tx.fetchval("SELECT pg_backend_pid()") != pid
            assert await provider.fetch(Sql("SELECT $1::int"), (5,), tx) == [(5,)]
    finally:
        await provider.close()
