"""Helpers of the NATS notify adapter tests (a module of its own so other packages' tests never clash)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Callable

import asyncpg
from queuert_nats import NatsNotifyAdapter

NATS_URL = (
    os.environ.get("QUEUERT_NATS_URL")
    or os.environ.get("QUEUERT_TEST_NATS_URL")
    or "nats://127.0.0.1:4222"
)
"""The shared server of the tests that need no server of their own (``tools/matrix`` sets it)."""


def nats_server_binary() -> str:
    """What starts the servers the resilience tests own: ``$QUEUERT_NATS_SERVER`` (set by
    ``tools/matrix`` to another version's binary) or the ``nats-server`` on the PATH."""
    binary = (
        os.environ.get("QUEUERT_NATS_SERVER")
        or shutil.which("nats-server")
        or ("/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None)
    )
    assert binary is not None, "the nats-server binary is needed (apt-get install nats-server)"
    return binary


def spare_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_adapter(servers: str, prefix: str, **options: object) -> NatsNotifyAdapter:
    settings: dict[str, object] = {
        "subject_prefix": prefix,
        "wake_hint_bucket": prefix,
        "create_wake_hint_bucket": True,
        "reconnect_time_wait": 0.1,
    }
    settings.update(options)
    return NatsNotifyAdapter(servers, **settings)  # type: ignore[arg-type]


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server; :meth:`drop` cuts every connection through it at once.

    The client sees a real connection reset, as when a server restarts or the network fails, while the
    server (shared with other test runs) is left alone.
    """

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._forward(reader, writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._transports.add(writer.transport)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            self._transports.discard(writer.transport)
            return
        self._transports.add(upstream_writer.transport)
        pumps = [
            asyncio.ensure_future(self._pump(reader, upstream_writer)),
            asyncio.ensure_future(self._pump(upstream_reader, writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for pump in pumps:
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            for side in (writer, upstream_writer):
                side.transport.abort()
                self._transports.discard(side.transport)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()

    async def drop(self) -> int:
        """Resets every connection through the proxy; returns how many client connections it cut."""
        transports = list(self._transports)
        for transport in transports:
            transport.abort()
        handlers = list(self._handlers)
        if handlers:
            await asyncio.wait(handlers)
        return len(handlers)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.drop()


class NatsServer:
    """A nats-server process (JetStream on) of the test's own, on a spare port, to stop and restart."""

    def __init__(self, binary: str, directory: str) -> None:
        self._binary = binary
        self._directory = directory
        self._process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def reserve_port(self) -> int:
        self.port = spare_port()
        return self.port

    async def start(self) -> None:
        """Starts the server and returns once it accepts clients."""
        if not self.port:
            self.reserve_port()
        process = await asyncio.create_subprocess_exec(
            self._binary,
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-js",
            "-sd", self._directory,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert process.stdout is not None
        output: list[bytes] = []
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            if not line:
                await process.wait()
                raise RuntimeError(f"nats-server did not start: {b''.join(output).decode()}")
            output.append(line)
            if b"Server is ready" in line:
                break
        self._process = process
        self._drain = asyncio.get_running_loop().create_task(self._discard_output(process))

    @staticmethod
    async def _discard_output(process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while await process.stdout.readline():
            pass

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

    async def crash(self) -> None:
        """Kills the server (SIGKILL) and returns once it is gone."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            await process.wait()
        if self._drain is not None:
            await self._drain
            self._drain = None


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
    return f"qt_nats_{uuid.uuid4().hex[:12]}"


async def drop_schema(schema: str) -> None:
    connection = await asyncpg.connect(PG_DSN)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()
