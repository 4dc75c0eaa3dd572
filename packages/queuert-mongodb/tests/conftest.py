"""Fixtures: one MongoDB server per test session (SecantusDB started here unless
``QUEUERT_MONGODB_URL`` names one); every test gets its own collection prefix, dropped afterwards."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator

import mongo_server
import pytest
from mongo_helpers import drop_prefix, open_adapter, unique_prefix
from queuert_conformance import StateHarness
from queuert_mongodb import MongoStateAdapter


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


@pytest.fixture(scope="session", autouse=True)
def _stop_the_session_server() -> Iterator[None]:
    """Stop the server this process started (each pytest-xdist worker starts its own)."""
    yield
    mongo_server.stop()


def pytest_unconfigure(config: pytest.Config) -> None:
    mongo_server.stop()
