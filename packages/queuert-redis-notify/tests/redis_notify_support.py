"""Helpers of the Redis notify adapter tests (a module of its own so other packages' tests never clash)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import uuid
from collections.abc import Callable

import asyncpg
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


class RedisServer:
    """A redis-server process of the test's own, on a spare port, that the test stops and restarts."""

    def __init__(self, binary: str, directory: str) -> None:
        self._binary = binary
        self._directory = directory
        self._process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None

    def reserve_port(self) -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        return self.port

    async def start(self) -> None:
        """Starts the server (on the reserved port) and returns once it accepts connections."""
        if not self.port:
            self.reserve_port()
        process = await asyncio.create_subprocess_exec(
            self._binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self._directory,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert process.stdout is not None
        output: list[bytes] = []
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            if not line:
                await process.wait()
                raise RuntimeError(f"redis-server did not start: {b''.join(output).decode()}")
            output.append(line)
            if b"Ready to accept connections" in line:
                break
        self._process = process
        self._drain = asyncio.get_running_loop().create_task(self._discard_output(process))

    @staticmethod
    async def _discard_output(process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while await process.stdout.readline():
            pass

    async def crash(self) -> None:
        """Kills the server (SIGKILL, like a crash) and returns once it is gone."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            await process.wait()
        if self._drain is not None:
            await self._drain
            self._drain = None

    async def stop(self) -> None:
        """Stops the server the ordinary way (SIGTERM: it closes its clients and exits)."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        if self._drain is not None:
            await self._drain
            self._drain = None

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets open but answers nothing (a silent network drop)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)


class Calls:
    """A listener callback recording its calls; tests wait on it instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, key: str) -> None:
        self.calls.append(key)
        self._changed.set()

    def bind(self, key: str) -> Callable[[], None]:
        return lambda: self(key)

    async def wait_for(self, count: int, timeout: float = 15.0) -> None:
        async def reached() -> None:
            while len(self.calls) < count:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(reached(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"expected {count} calls within {timeout}s: {self.calls!r}"
            ) from None


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
