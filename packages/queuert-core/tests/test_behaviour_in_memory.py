"""The behaviour suites on the in-memory state adapter, with in-process and with no notifications."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from queuert import InMemoryStateAdapter, InProcessNotifyAdapter, NoopNotifyAdapter, NotifyAdapter
from queuert.json import loads_stored
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403


@pytest.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    adapter = InMemoryStateAdapter()

    async def write_raw(job_id: str, which: str, text: str) -> bool:
        """Replace the stored value with what reading ``text`` gives (the store keeps values)."""
        if which not in ("input", "output"):
            return False  # times are held as datetimes: nothing else can be stored there
        store = adapter._store
        store.jobs[job_id] = dataclasses.replace(store.jobs[job_id], **{which: loads_stored(text)})
        return True

    yield StateHarness(
        adapter=adapter, poison=getattr(adapter, "poison", None), write_raw=write_raw
    )
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
