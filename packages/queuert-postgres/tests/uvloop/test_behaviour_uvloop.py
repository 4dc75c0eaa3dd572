"""The shared behaviour suites (client + worker) on PostgreSQL through asyncpg, with the LISTEN/NOTIFY
adapter, on uvloop's event loop: the combination most asyncpg deployments run.

One configuration (a schema of its own with a table prefix): the other configurations of
``test_behaviour_conformance.py`` vary the storage, not the loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvloop
from pg_helpers import DSN, Namespace, behaviour_harness, unique_schema
from queuert.notify import NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_postgres import PgNotifyAdapter


@pytest.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    ns = Namespace(unique_schema(), f"q{uuid.uuid4().hex[:10]}_")
    async with behaviour_harness(ns) as harness:
        yield harness


@pytest.fixture
async def queuert_notify_factory() -> AsyncIterator[Callable[[], Awaitable[NotifyAdapter]]]:
    prefix = f"qt{uuid.uuid4().hex[:12]}"
    opened: list[NotifyAdapter] = []

    async def factory() -> NotifyAdapter:
        adapter = PgNotifyAdapter(DSN, channel_prefix=prefix, reconnect_initial_delay=0.05)
        opened.append(adapter)
        return adapter

    yield factory
    for adapter in opened:
        await adapter.close()


async def test_runs_on_uvloop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
