"""MySQL has no LISTEN/NOTIFY: the behaviour cases that depend on wake-ups, on MySQL with the Redis
and the NATS notify adapters (every client of a test gets an adapter with connections of its own,
as another process would). Polling alone and an in-process adapter run every behaviour case in
``test_mysql_behaviour_conformance.py``."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from mysql_helpers import drop_prefix, make_adapter, unique_prefix
from queuert.notify import NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import (
    TestCancel,
    TestFanOutFanIn,
    TestNotifyResilience,
    TestPickup,
    TestScheduling,
    TestWaitForChain,
    queuert_env,
)
from queuert_mysql import MysqlStateAdapter

__all__ = [
    "TestCancel",
    "TestFanOutFanIn",
    "TestNotifyResilience",
    "TestPickup",
    "TestScheduling",
    "TestWaitForChain",
    "queuert_env",
]

REDIS_URL = os.environ.get("QUEUERT_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("QUEUERT_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    prefix = unique_prefix()
    adapter = await make_adapter(prefix)
    try:
        await adapter.migrate()

        async def open_another() -> MysqlStateAdapter[Any]:
            return await make_adapter(prefix)

        yield StateHarness(adapter=adapter, poison=adapter.poison, open_another=open_another)
    finally:
        await adapter.close()
        await drop_prefix(prefix)


@pytest.fixture(params=["redis", "nats"])
async def queuert_notify_factory(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[[], Awaitable[NotifyAdapter]]]:
    prefix = f"qm{uuid.uuid4().hex[:10]}"
    made: list[NotifyAdapter] = []

    async def factory() -> NotifyAdapter:
        adapter: NotifyAdapter
        if request.param == "redis":
            from queuert_redis import RedisNotifyAdapter

            adapter = RedisNotifyAdapter(REDIS_URL, prefix=prefix)
        else:
            from queuert_nats import NatsNotifyAdapter

            adapter = NatsNotifyAdapter(
                NATS_URL,
                subject_prefix=prefix,
                wake_hint_bucket=prefix,
                create_wake_hint_bucket=True,
                reconnect_time_wait=0.1,
            )
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        await adapter.close()
