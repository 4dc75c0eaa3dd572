"""The behaviour suites (client + worker) on PostgreSQL, with notifications over NATS.

Each test gets a schema of its own (migrated, dropped afterwards), a subject prefix and a KV bucket of
its own (``admin`` deletes the bucket afterwards); every client of a test gets a new adapter with its
own connection, as another process would have.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from nats.aio.client import Client
from nats_notify_support import NATS_URL, PG_DSN, drop_schema, make_adapter, unique_schema
from queuert import NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_nats import NatsNotifyAdapter
from queuert_postgres import PgStateAdapter


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
    prefix: str, admin: Client
) -> AsyncIterator[Callable[[], Awaitable[NotifyAdapter]]]:
    made: list[NatsNotifyAdapter] = []

    async def factory() -> NotifyAdapter:
        adapter = make_adapter(NATS_URL, prefix)
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        await adapter.close()
