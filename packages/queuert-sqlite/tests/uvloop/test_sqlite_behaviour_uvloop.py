"""The shared behaviour suites (client + worker) on a SQLite file, on uvloop's event loop.

The SQLite adapter hands every statement to a connection thread and gets the result back through
the loop's thread-safe callbacks, the part of an event loop that differs most between asyncio and
uvloop. The table prefix makes no difference to the loop, so one configuration runs here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from queuert.state import StateAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_sqlite import SqliteStateAdapter


@pytest.fixture
def table_prefix() -> str:
    return "uv_"


@pytest.fixture
async def queuert_state_harness(db_path: Path, table_prefix: str) -> AsyncIterator[StateHarness]:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    adapter = await SqliteStateAdapter.open(db_path, table_prefix=table_prefix)
    await adapter.migrate()

    async def open_another() -> StateAdapter[Any]:
        return await SqliteStateAdapter.open(db_path, table_prefix=table_prefix)

    try:
        yield StateHarness(adapter=adapter, poison=adapter.poison, open_another=open_another)
    finally:
        await adapter.close()


async def test_runs_on_uvloop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
