"""Helpers of the Redis notify adapter tests (a module of its own so other packages' tests never clash)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid

import asyncpg
from queuert_conformance.notify_worker import ServerProcess
from queuert_redis import RedisNotifyAdapter
from redis.asyncio import Redis

REDIS_URL = (
    os.environ.get("QUEUERT_REDIS_URL")
    or os.environ.get("QUEUERT_TEST_REDIS_URL")
    or "redis://127.0.0.1:6379/0"
)
"""The shared server of the tests that need no server of their own (``tools/matrix`` sets it)."""


def redis_server_command() -> str:
    """What starts the servers the resilience tests own: ``$QUEUERT_REDIS_SERVER`` (set by
    ``tools/matrix`` to another version's binary) or the ``redis-server`` on the PATH."""
    command = os.environ.get("QUEUERT_REDIS_SERVER") or shutil.which("redis-server")
    assert command is not None, "the redis-server binary is needed (apt-get install redis-server)"
    return command


async def kill_clients(admin: Redis, name_prefix: str) -> int:
    """Drops every connection whose client name starts with ``name_prefix`` (as a restart would)."""
    killed = 0
    for entry in await admin.client_list():
        if str(entry.get("name", "")).startswith(name_prefix):
            killed += int(await admin.client_kill_filter(_id=entry["id"]))
    return killed


def make_adapter(prefix: str, name: str, url: str = REDIS_URL) -> RedisNotifyAdapter:
    return RedisNotifyAdapter(
        url,
        prefix=prefix,
        client_name=f"{prefix}-{name}",
        reconnect_delay=0.05,
        max_reconnect_delay=0.5,
    )


class RedisServer(ServerProcess):
    """A redis-server process of the test's own, on a spare port, that the test stops and restarts."""

    def __init__(self, binary: str, directory: str) -> None:
        def command(port: int) -> list[str]:
            return [
                binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", directory,
            ]  # fmt: skip

        super().__init__(command, b"Ready to accept connections", "redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class LogWatcher(logging.Handler):
    """Sets an event when the adapter logs a record containing ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


PG_DSN = os.environ.get("QUEUERT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
"""PostgreSQL for the state of the worker-level tests and the behaviour suites on PostgreSQL."""


def unique_schema() -> str:
    return f"qt_redis_{uuid.uuid4().hex[:12]}"


async def drop_schema(schema: str) -> None:
    connection = await asyncpg.connect(PG_DSN)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()
