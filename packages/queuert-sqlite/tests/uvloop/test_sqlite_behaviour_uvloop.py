"""The shared behaviour suites (client + worker) on a SQLite file, on uvloop's event loop.

The SQLite adapter hands every statement to a connection thread and gets the result back through
the loop's thread-safe callbacks, the part of an event loop that differs most between asyncio and
uvloop. The table prefix makes no difference to the loop, so one configuration runs here; the
harness is that of ``test_sqlite_behaviour.py`` (``sqlite_harness.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvloop
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403
from sqlite_harness import sqlite_harness


@pytest.fixture
def table_prefix() -> str:
    return "uv_"


@pytest.fixture
async def queuert_state_harness(db_path: Path, table_prefix: str) -> AsyncIterator[StateHarness]:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    async with sqlite_harness(db_path, table_prefix) as harness:
        yield harness


async def test_runs_on_uvloop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
