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

        async def another_in_process() -> InProcessNotifyAdapter:
            return in_process.another()

        yield NotifyHarness(
            adapter=in_process, open_another=another_in_process, interrupt=in_process.interrupt
        )
        await in_process.close()
    else:
        noop = NoopNotifyAdapter()

        async def another_noop() -> NoopNotifyAdapter:
            return noop.another()

        yield NotifyHarness(
            adapter=noop,
            open_another=another_noop,
            interrupt=noop.interrupt,
            delivers=False,
            wake_hint_budgets=False,
        )
        await noop.close()
