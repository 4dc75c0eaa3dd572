"""The shared state adapter conformance suite on a SQLite file, with and without a table prefix."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from queuert.state import StateAdapter
from queuert_conformance import StateHarness
from queuert_conformance.state import *  # noqa: F403
from queuert_sqlite import SqliteStateAdapter


@pytest.fixture
async def queuert_state_harness(db_path: Path, table_prefix: str) -> AsyncIterator[StateHarness]:
    adapter = await SqliteStateAdapter.open(db_path, table_prefix=table_prefix)
    await adapter.migrate()

    async def open_another() -> StateAdapter[Any]:
        # another "process": its own writer and readers on the same file
        return await SqliteStateAdapter.open(db_path, table_prefix=table_prefix)

    async def open_sharing() -> StateAdapter[Any]:
        # over the same provider, which it does not own
        return SqliteStateAdapter(adapter.provider, table_prefix=table_prefix, owns_provider=False)

    try:
        yield StateHarness(
            adapter=adapter,
            poison=adapter.poison,
            open_another=open_another,
            open_sharing=open_sharing,
            # in the suite's worker processes: their own adapter on the same file
            open_in_process=functools.partial(
                SqliteStateAdapter.open, db_path, table_prefix=table_prefix
            ),
        )
    finally:
        await adapter.close()
