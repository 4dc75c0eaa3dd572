"""Fixtures of the Redis notify adapter tests: real Redis 7 at 127.0.0.1:6379 (``QUEUERT_REDIS_URL``),
one prefix per test; PostgreSQL (``QUEUERT_PG_DSN``) with one schema per test for the worker-level tests."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from queuert_conformance import NotifyHarness
from queuert_postgres import PgStateAdapter
from queuert_redis import RedisNotifyAdapter
from redis.asyncio import Redis
from redis_notify_support import (
    PG_DSN,
    REDIS_URL,
    LogWatcher,
    RedisServer,
    drop_schema,
    kill_clients,
    make_adapter,
    redis_server_command,
    unique_schema,
)


@pytest.fixture
def prefix() -> str:
    """A channel and key prefix no other test (or concurrent test run) uses."""
    return f"qt-{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def admin() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def queuert_notify_harness(prefix: str, admin: Redis) -> AsyncIterator[NotifyHarness]:
    adapter = make_adapter(prefix, "main")
    others: list[RedisNotifyAdapter] = []

    async def open_another() -> RedisNotifyAdapter:
        other = make_adapter(prefix, f"other{len(others)}")
        others.append(other)
        return other

    async def interrupt() -> None:
        # The adapter's publisher pool and its subscriber connection, nobody else's.
        assert await kill_clients(admin, f"{prefix}-main") >= 1

    yield NotifyHarness(adapter=adapter, open_another=open_another, interrupt=interrupt)
    await adapter.close()
    for other in others:
        await other.close()
    async for key in admin.scan_iter(match=f"{prefix}:*"):
        await admin.delete(key)


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(redis_server_command(), str(tmp_path))
    yield server
    if server.running:
        server.resume()
    await server.crash()


@pytest.fixture
def watch_log() -> Iterator[Callable[[str], LogWatcher]]:
    logger = logging.getLogger("queuert.notify.redis")
    watchers: list[LogWatcher] = []
    previous = logger.level
    logger.setLevel(logging.DEBUG)

    def watch(text: str) -> LogWatcher:
        watcher = LogWatcher(text)
        logger.addHandler(watcher)
        watchers.append(watcher)
        return watcher

    yield watch
    for watcher in watchers:
        logger.removeHandler(watcher)
    logger.setLevel(previous)


@pytest.fixture
async def pg_states() -> AsyncIterator[Callable[[], Awaitable[PgStateAdapter[Any]]]]:
    """Opens PostgreSQL state adapters (each with its own pool, as separate processes would have) on
    one schema of the test's own, migrated by the first; closes them and drops the schema afterwards."""
    schema = unique_schema()
    opened: list[PgStateAdapter[Any]] = []

    async def open_state() -> PgStateAdapter[Any]:
        adapter = await PgStateAdapter.connect(PG_DSN, schema=schema, min_size=1, max_size=10)
        opened.append(adapter)
        if len(opened) == 1:
            await adapter.migrate()
        return adapter

    try:
        yield open_state
    finally:
        for adapter in opened:
            await adapter.close()
        await drop_schema(schema)
