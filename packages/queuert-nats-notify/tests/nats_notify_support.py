"""Helpers of the NATS notify adapter tests (a module of its own so other packages' tests never clash)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid

import asyncpg
from queuert_conformance.notify_worker import ServerProcess
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


class NatsServer(ServerProcess):
    """A nats-server process (JetStream on) of the test's own, on a spare port, to stop and restart."""

    def __init__(self, binary: str, directory: str) -> None:
        def command(port: int) -> list[str]:
            return [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", directory]

        super().__init__(command, b"Server is ready", "nats-server")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


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
