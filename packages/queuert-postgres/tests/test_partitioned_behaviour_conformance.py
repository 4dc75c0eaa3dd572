"""The shared behaviour suites (client + worker) on the partitioned layout, with LISTEN/NOTIFY."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from pg_helpers import DSN, Namespace, behaviour_harness, unique_schema
from queuert.notify import NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_postgres import PgNotifyAdapter


@pytest.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    async with behaviour_harness(
        Namespace(unique_schema(), "queuert_"), partitioned=True
    ) as harness:
        yield harness


@pytest.fixture
async def queuert_notify_factory() -> AsyncIterator[Callable[[], Awaitable[NotifyAdapter]]]:
    prefix = f"qt{uuid.uuid4().hex[:12]}"
    opened: list[NotifyAdapter] = []

    async def factory() -> NotifyAdapter:
        adapter = PgNotifyAdapter(DSN, channel_prefix=prefix, reconnect_initial_delay=0.05)
        opened.append(adapter)
        return adapter

    yield factory
    for adapter in opened:
        await adapter.close()
