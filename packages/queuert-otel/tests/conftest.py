"""Fixtures: the SDK's in-memory exporters behind an ``OtelObservability``, and a store per backend
(in-memory, SQLite in a temporary file, PostgreSQL in a schema of its own)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from otel_helpers import Telemetry
from queuert import InMemoryStateAdapter
from queuert.state import StateAdapter

PG_DSN = os.environ.get("QUEUERT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.shutdown()


async def open_backend(kind: str, tmp_path: Path) -> tuple[StateAdapter[Any], Any]:
    """A migrated store and a coroutine function that removes what it created."""
    if kind == "memory":
        return InMemoryStateAdapter(), None
    if kind == "sqlite":
        from queuert_sqlite import SqliteStateAdapter

        sqlite = await SqliteStateAdapter.open(str(tmp_path / "jobs.db"))
        await sqlite.migrate()
        return sqlite, None
    if kind == "postgres":
        import asyncpg
        from queuert_postgres import PgStateAdapter

        schema = f"qo_{uuid.uuid4().hex[:12]}"
        pg = await PgStateAdapter.connect(PG_DSN, schema=schema, max_size=4)
        await pg.migrate()

        async def drop() -> None:
            conn = await asyncpg.connect(PG_DSN)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()

        return pg, drop
    raise AssertionError(kind)


BACKENDS = ["memory", "sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
async def state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateAdapter[Any]]:
    adapter, cleanup = await open_backend(request.param, tmp_path)
    try:
        yield adapter
    finally:
        await adapter.close()
        if cleanup is not None:
            await cleanup()
