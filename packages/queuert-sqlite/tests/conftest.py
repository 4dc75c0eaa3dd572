"""Fixtures of the SQLite adapter tests: every test gets its own database file in a temp dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from queuert_sqlite import SqliteStateAdapter

PREFIXES = ["", "app_"]
"""The two table configurations every suite runs with: no prefix, and a prefix."""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "queuert.db"


@pytest.fixture(params=PREFIXES, ids=lambda p: f"prefix={p or 'none'}")
def table_prefix(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def adapter(db_path: Path, table_prefix: str) -> AsyncIterator[SqliteStateAdapter]:
    store = await SqliteStateAdapter.open(db_path, table_prefix=table_prefix)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def thread_adapter(db_path: Path, table_prefix: str) -> AsyncIterator[SqliteStateAdapter]:
    """An adapter whose writes all take the writer's thread (``inline_writes=False``): for tests of
    the round trips to the connections' threads."""
    store = await SqliteStateAdapter.open(db_path, table_prefix=table_prefix, inline_writes=False)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()
