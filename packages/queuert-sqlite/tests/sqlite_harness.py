"""The behaviour suites' harness on a SQLite file (shared by the asyncio and the uvloop runs)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from queuert.state import StateAdapter
from queuert_conformance import StateHarness
from queuert_sqlite import SqliteStateAdapter


@asynccontextmanager
async def sqlite_harness(db_path: Path, table_prefix: str) -> AsyncIterator[StateHarness]:
    """A migrated adapter on ``db_path`` with every hook: poison, another adapter on the same file,
    and raw writes through a connection of its own (as a hand edit would)."""
    adapter = await SqliteStateAdapter.open(db_path, table_prefix=table_prefix)
    await adapter.migrate()

    async def open_another() -> StateAdapter[Any]:
        return await SqliteStateAdapter.open(db_path, table_prefix=table_prefix)

    async def write_raw(job_id: str, which: str, text: str) -> bool:
        # every column is text: values and times alike can be edited into anything
        column = {
            name: name
            for name in (
                "input",
                "output",
                "scheduled_at",
                "created_at",
                "completed_at",
                "last_attempt_at",
                "leased_until",
            )
        }[which]

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
            # in the suites' worker processes: their own adapter on the same file
            open_in_process=functools.partial(
                SqliteStateAdapter.open, db_path, table_prefix=table_prefix
            ),
        )
    finally:
        await adapter.close()
