"""The state adapter conformance suite against the in-memory reference adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from queuert.in_memory import InMemoryStateAdapter
from queuert_conformance import StateHarness
from queuert_conformance.state import *  # noqa: F403


@pytest_asyncio.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    adapter = InMemoryStateAdapter()
    await adapter.migrate()
    yield StateHarness(adapter=adapter, poison=adapter.poison)
    await adapter.close()
