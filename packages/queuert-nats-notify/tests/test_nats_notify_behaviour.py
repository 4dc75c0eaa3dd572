"""The behaviour suites (client + worker) with notifications over NATS, on the in-memory state adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.aio.client import Client
from nats_notify_support import NATS_URL, make_adapter
from queuert import InMemoryStateAdapter, NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_nats import NatsNotifyAdapter


@pytest.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    adapter = InMemoryStateAdapter()
    yield StateHarness(adapter=adapter, poison=getattr(adapter, "poison", None))
    await adapter.close()


@pytest.fixture
async def queuert_notify_factory(
    prefix: str, admin: Client
) -> AsyncIterator[Callable[[], Awaitable[NotifyAdapter]]]:
    """A new adapter (its own connection, as another process would have) for every client; budgets
    in the test's own KV bucket (``admin`` deletes it afterwards)."""
    made: list[NatsNotifyAdapter] = []

    async def factory() -> NotifyAdapter:
        adapter = make_adapter(NATS_URL, prefix)
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        await adapter.close()
