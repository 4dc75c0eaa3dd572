"""Fixtures: one MongoDB server per test session (SecantusDB started here unless
``QUEUERT_MONGODB_URL`` names one); every test gets its own collection prefix, dropped afterwards."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import mongo_server
import pytest
from mongo_helpers import drop_prefix, open_adapter, unique_prefix
from queuert_conformance import StateHarness
from queuert_mongodb import MongoStateAdapter

STATE_CONFIGS = ["default-prefix", "unique-prefix"]


@pytest.fixture(params=STATE_CONFIGS)
async def queuert_state_harness(request: pytest.FixtureRequest) -> AsyncIterator[StateHarness]:
    prefix = unique_prefix()
    if request.param == "default-prefix":
        prefix = prefix[:-1] + "queuert_"
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


def pytest_unconfigure(config: pytest.Config) -> None:
    mongo_server.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The hypothesis model case runs for one collection-prefix configuration only: it drives the
    same commands whatever the prefix, and takes a minute per run on SecantusDB."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        config_name = callspec.params.get("queuert_state_harness") if callspec else None
        cls = getattr(item, "cls", None)
        if cls is not None and cls.__name__ == "TestStateModel" and config_name == "unique-prefix":
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
