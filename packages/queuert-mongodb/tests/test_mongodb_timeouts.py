"""A client the adapter opens is bounded: 10 s to connect and to find a server, 60 s per answer,
unless the URL or the caller says otherwise; a server that accepts connections and never answers
makes opening the adapter fail instead of hang."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import mongo_server
import pytest
from mongo_helpers import DATABASE, unique_prefix
from pymongo.errors import ServerSelectionTimeoutError
from queuert_conformance.resilience import silent_peer
from queuert_mongodb import MongoNotifyAdapter, MongoStateAdapter


async def _state_adapter() -> MongoStateAdapter:
    return await MongoStateAdapter.connect(
        mongo_server.server_url(), database=DATABASE, collection_prefix=unique_prefix()
    )


async def _notify_adapter() -> MongoNotifyAdapter:
    """Its calls are bounded by ``publish_timeout``; closing its client (``endSessions``) by these."""
    return MongoNotifyAdapter.connect(
        mongo_server.server_url(), database=DATABASE, collection_prefix=unique_prefix()
    )


@pytest.mark.parametrize("open_adapter", [_state_adapter, _notify_adapter], ids=["state", "notify"])
async def test_the_client_an_adapter_opens_gets_bounded_timeouts_by_default(
    open_adapter: Callable[[], Awaitable[MongoStateAdapter | MongoNotifyAdapter]],
) -> None:
    adapter = await open_adapter()
    try:
        pool = adapter.client.options.pool_options
        assert pool.connect_timeout == 10 and pool.socket_timeout == 60
        assert adapter.client.options.server_selection_timeout == 10
    finally:
        await adapter.close()


async def test_the_url_and_the_caller_keep_their_own_timeouts() -> None:
    base = mongo_server.server_url()
    url = base + ("&" if "?" in base else "?") + "sockettimeoutms=5000"
    adapter = await MongoStateAdapter.connect(
        url, database=DATABASE, collection_prefix=unique_prefix(), connectTimeoutMS=3000
    )
    try:
        pool = adapter.client.options.pool_options
        assert pool.socket_timeout == 5 and pool.connect_timeout == 3
    finally:
        await adapter.close()


async def test_opening_against_a_server_that_never_answers_fails() -> None:
    loop = asyncio.get_running_loop()
    async with silent_peer() as (host, port, accepted):
        started = loop.time()
        with pytest.raises(ServerSelectionTimeoutError):
            # the URL shortens the wait for a server; the answer wait is the adapter's default
            await MongoStateAdapter.connect(
                f"mongodb://{host}:{port}/?directConnection=true&serverSelectionTimeoutMS=1500",
                database=DATABASE,
            )
        assert accepted.is_set(), "the client reached the silent server"
        assert loop.time() - started < 10, f"gave up after {loop.time() - started:.1f} s"
