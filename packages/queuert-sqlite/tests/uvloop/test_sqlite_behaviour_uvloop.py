"""The shared behaviour suites (client + worker) on a SQLite file, on uvloop's event loop.

The SQLite adapter hands every statement to a connection thread and gets the result back through
the loop's thread-safe callbacks, the part of an event loop that differs most between asyncio and
uvloop. The table prefix makes no difference to the loop, so one configuration runs here; the
harness is that of ``test_sqlite_behaviour.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
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

    async def write_raw(job_id: str, which: str, text: str) -> bool:
        """Store ``text`` as it is, through a connection of its own (as a hand edit would)."""
        column = {"input": "input", "output": "output"}[which]

        def write() -> None:
            with contextlib.closing(sqlite3.connect(db_path, timeout=10)) as conn:
                conn.execute(
                    f"UPDATE {adapter.table_prefix}job SET {column} = ? WHERE id = ?",
                    (text, job_id),
                )
                conn.commit()

        await asyncio.to_thread(write)
        return True

    try:
        yield StateHarness(
            adapter=adapter,
            poison=adapter.poison,
            open_another=open_another,
            write_raw=write_raw,
        )
    finally:
        await adapter.close()


async def test_runs_on_uvloop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
