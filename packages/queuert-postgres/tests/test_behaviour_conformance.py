"""The shared behaviour suites (client + worker) on PostgreSQL, with the LISTEN/NOTIFY adapter and
with no notifications at all (polling only)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from pg_helpers import DSN, Namespace, behaviour_harness, unique_schema
from queuert.in_memory import NoopNotifyAdapter
from queuert.notify import NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_postgres import PgNotifyAdapter

CONFIGS = {
    "public": ("public", ""),
    "schema-prefix": ("", "qx_"),
}


@pytest.fixture(params=list(CONFIGS))
async def queuert_state_harness(request: pytest.FixtureRequest) -> AsyncIterator[StateHarness]:
    schema, prefix = CONFIGS[request.param]
    ns = Namespace(schema or unique_schema(), prefix or f"q{uuid.uuid4().hex[:10]}_")
    async with behaviour_harness(ns) as harness:
        yield harness


@pytest.fixture(params=["listen-notify", "no-op"])
async def queuert_notify_factory(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[[], Awaitable[NotifyAdapter]]]:
    prefix = f"qt{uuid.uuid4().hex[:12]}"
    opened: list[NotifyAdapter] = []

    async def factory() -> NotifyAdapter:
        adapter: NotifyAdapter
        if request.param == "no-op":
            adapter = NoopNotifyAdapter()
        else:
            adapter = PgNotifyAdapter(DSN, channel_prefix=prefix, reconnect_initial_delay=0.05)
        opened.append(adapter)
        return adapter

    yield factory
    for adapter in opened:
        await adapter.close()
