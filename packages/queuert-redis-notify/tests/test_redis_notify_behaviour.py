"""The behaviour suites (client + worker) with notifications over Redis, on the in-memory state adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from queuert import InMemoryStateAdapter, NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_redis import RedisNotifyAdapter
from redis_notify_support import REDIS_URL


@pytest.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    adapter = InMemoryStateAdapter()
    yield StateHarness(adapter=adapter, poison=getattr(adapter, "poison", None))
    await adapter.close()


@pytest.fixture
async def queuert_notify_factory(
    prefix: str,
) -> AsyncIterator[Callable[[], Awaitable[NotifyAdapter]]]:
    """A new adapter (its own connections, as another process would have) for every client."""
    made: list[RedisNotifyAdapter] = []

    async def factory() -> NotifyAdapter:
        adapter = RedisNotifyAdapter(REDIS_URL, prefix=prefix)
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        await adapter.close()
