"""The shared behaviour suites (client + worker) on MySQL / MariaDB through aiomysql, with the Redis
notify adapter (MySQL has no LISTEN/NOTIFY of its own), on uvloop's event loop: every network client
of a typical deployment runs on it.

One configuration (a table prefix of its own): the configurations of
``test_mysql_behaviour_conformance.py`` vary the tables and the notifications, not the loop.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvloop
from mysql_helpers import behaviour_harness, unique_prefix
from queuert.notify import NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_redis import RedisNotifyAdapter

REDIS_URL = os.environ.get("QUEUERT_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    async with behaviour_harness(unique_prefix()) as harness:
        yield harness


@pytest.fixture
async def queuert_notify_factory() -> AsyncIterator[Callable[[], Awaitable[NotifyAdapter]]]:
    prefix = f"qm{uuid.uuid4().hex[:10]}"
    opened: list[NotifyAdapter] = []

    async def factory() -> NotifyAdapter:
        adapter = RedisNotifyAdapter(REDIS_URL, prefix=prefix)
        opened.append(adapter)
        return adapter

    yield factory
    for adapter in opened:
        await adapter.close()


async def test_runs_on_uvloop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
