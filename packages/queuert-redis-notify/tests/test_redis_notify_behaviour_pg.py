"""The behaviour suites (client + worker) on PostgreSQL, with notifications over Redis.

Each test gets a schema of its own (migrated, dropped afterwards) and a Redis prefix of its own; every
client of a test gets a new adapter with its own connections, as another process would have.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from queuert import NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_postgres import PgStateAdapter
from queuert_redis import RedisNotifyAdapter
from redis_notify_support import PG_DSN, REDIS_URL, drop_schema, unique_schema


@pytest.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    schema = unique_schema()
    adapter = await PgStateAdapter.connect(PG_DSN, schema=schema, min_size=1, max_size=10)
    try:
        await adapter.migrate()

        async def open_another() -> PgStateAdapter[Any]:
            return await PgStateAdapter.connect(PG_DSN, schema=schema, min_size=1, max_size=10)

        yield StateHarness(adapter=adapter, poison=adapter.poison, open_another=open_another)
    finally:
        await adapter.close()
        await drop_schema(schema)


@pytest.fixture
async def queuert_notify_factory(
    prefix: str,
) -> AsyncIterator[Callable[[], Awaitable[NotifyAdapter]]]:
    made: list[RedisNotifyAdapter] = []

    async def factory() -> NotifyAdapter:
        adapter = RedisNotifyAdapter(REDIS_URL, prefix=prefix)
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        await adapter.close()
