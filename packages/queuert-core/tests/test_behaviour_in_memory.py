"""The behaviour suites on the in-memory state adapter, with in-process and with no notifications."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from queuert import InMemoryStateAdapter, InProcessNotifyAdapter, NoopNotifyAdapter, NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403


@pytest.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    adapter = InMemoryStateAdapter()
    yield StateHarness(adapter=adapter, poison=getattr(adapter, "poison", None))
    await adapter.close()


@pytest.fixture(params=["in_process", "noop"])
async def queuert_notify_factory(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[[], Awaitable[NotifyAdapter]]]:
    adapter: Any = (
        InProcessNotifyAdapter() if request.param == "in_process" else NoopNotifyAdapter()
    )

    async def factory() -> NotifyAdapter:
        return adapter  # type: ignore[no-any-return]

    yield factory
    await adapter.close()
