"""Fixtures: every test gets its own table prefix on the shared server, dropped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mysql_helpers import drop_prefix, make_adapter, unique_prefix
from queuert_conformance import StateHarness
from queuert_mysql import MysqlStateAdapter

STATE_CONFIGS = {
    # table prefix ("" = a unique one per test)
    "default-prefix": "queuert_",
    "unique-prefix": "",
}


@pytest.fixture(params=list(STATE_CONFIGS))
async def queuert_state_harness(request: pytest.FixtureRequest) -> AsyncIterator[StateHarness]:
    prefix = STATE_CONFIGS[request.param] or unique_prefix()
    if prefix == "queuert_":
        # the default prefix in a database of its own per test, so parallel runs never collide
        prefix = unique_prefix()[:-1] + "queuert_"
    adapter = await make_adapter(prefix)
    try:
        await adapter.migrate()

        async def open_another() -> MysqlStateAdapter[Any]:
            return await make_adapter(prefix)

        async def open_sharing() -> MysqlStateAdapter[Any]:
            return MysqlStateAdapter(adapter.provider, table_prefix=prefix, owns_provider=False)

        yield StateHarness(
            adapter=adapter,
            poison=adapter.poison,
            open_another=open_another,
            open_sharing=open_sharing,
        )
    finally:
        await adapter.close()
        await drop_prefix(prefix)
