"""The notify conformance suite against the adapters that need no server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from queuert.in_memory import InProcessNotifyAdapter, NoopNotifyAdapter
from queuert_conformance import NotifyHarness
from queuert_conformance.notify import *  # noqa: F403


@pytest.fixture(params=["in_process", "noop"])
async def queuert_notify_harness(request: pytest.FixtureRequest) -> AsyncIterator[NotifyHarness]:
    if request.param == "in_process":
        in_process = InProcessNotifyAdapter()
        yield NotifyHarness(adapter=in_process, cross_process=False)
        await in_process.close()
    else:
        noop = NoopNotifyAdapter()
        yield NotifyHarness(
            adapter=noop, cross_process=False, delivers=False, wake_hint_budgets=False
        )
        await noop.close()
