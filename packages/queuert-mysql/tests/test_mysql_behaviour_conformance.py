"""The shared behaviour suites (client + worker) on MySQL / MariaDB, in two table configurations,
with an in-process notify adapter and with no notifications at all (polling only: MySQL has no
LISTEN/NOTIFY of its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from mysql_helpers import behaviour_harness, unique_prefix
from queuert.in_memory import InProcessNotifyAdapter, NoopNotifyAdapter
from queuert.notify import NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403

CONFIGS = ["default-prefix", "unique-prefix"]


@pytest.fixture(params=CONFIGS)
async def queuert_state_harness(request: pytest.FixtureRequest) -> AsyncIterator[StateHarness]:
    prefix = unique_prefix()
    if request.param == "default-prefix":
        prefix = prefix[:-1] + "queuert_"
    async with behaviour_harness(prefix) as harness:
        yield harness


@pytest.fixture(params=["in-process", "polling-only"])
async def queuert_notify_factory(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[[], Awaitable[NotifyAdapter]]]:
    shared = InProcessNotifyAdapter()
    opened: list[NotifyAdapter] = [shared]

    async def factory() -> NotifyAdapter:
        if request.param == "in-process":
            return shared
        adapter = NoopNotifyAdapter()
        opened.append(adapter)
        return adapter

    yield factory
    for adapter in opened:
        await adapter.close()
