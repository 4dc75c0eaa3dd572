"""Fixtures: one MongoDB server per test session (SecantusDB started here unless
``QUEUERT_MONGODB_URL`` names one); every test gets its own collection prefix, dropped afterwards."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import mongo_container
import mongo_server
import pytest
from mongo_helpers import DATABASE, drop_prefix, open_adapter, unique_prefix
from pymongo import AsyncMongoClient
from queuert_conformance import NotifyHarness, StateHarness
from queuert_mongodb import MongoNotifyAdapter, MongoStateAdapter

# before any test asks for a server, and before pytest-xdist starts its workers (they inherit the URLs)
mongo_container.start_if_asked()


@pytest.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    # the default prefix "queuert_" after a unique lead, so that parallel runs never collide
    prefix = unique_prefix()[:-1] + "queuert_"
    url = mongo_server.server_url()
    adapter = await open_adapter(prefix, url)
    try:
        await adapter.migrate()

        async def open_another() -> MongoStateAdapter:
            return await open_adapter(prefix, url)

        async def open_sharing() -> MongoStateAdapter:
            return MongoStateAdapter(
                adapter.client, database=adapter.names.database, collection_prefix=prefix
            )

        yield StateHarness(
            adapter=adapter,
            poison=adapter.poison,
            open_another=open_another,
            open_sharing=open_sharing,
            open_in_process=functools.partial(open_adapter, prefix, url),
        )
    finally:
        await adapter.close()
        await drop_prefix(prefix, url)


@pytest.fixture
async def queuert_notify_harness() -> AsyncIterator[NotifyHarness]:
    prefix = unique_prefix()
    url = mongo_server.server_url()

    def open_notify() -> MongoNotifyAdapter:
        return MongoNotifyAdapter.connect(
            url, database=DATABASE, collection_prefix=prefix, reconnect_delay=0.05, max_await=0.2
        )

    adapter = open_notify()

    async def open_another() -> MongoNotifyAdapter:
        return open_notify()

    async def interrupt() -> None:
        """Kill the change stream's cursor on the server, as a restart or a failover would."""
        cursor_id = adapter.listening_cursor_id
        assert cursor_id is not None, "the adapter has no change stream to interrupt"
        killer: AsyncMongoClient[Any] = AsyncMongoClient(url)
        try:
            reply = await killer[DATABASE].command(
                "killCursors", f"{prefix}notify", cursors=[cursor_id]
            )
        finally:
            await killer.close()
        assert reply["cursorsKilled"] == [cursor_id]

    try:
        yield NotifyHarness(adapter=adapter, open_another=open_another, interrupt=interrupt)
    finally:
        await adapter.close()
        await drop_prefix(prefix, url)


@pytest.fixture(scope="session", autouse=True)
def _stop_the_session_server() -> Iterator[None]:
    """Stop the server this process started (each pytest-xdist worker starts its own)."""
    yield
    mongo_server.stop()


def pytest_unconfigure(config: pytest.Config) -> None:
    mongo_server.stop()
    mongo_container.stop()
