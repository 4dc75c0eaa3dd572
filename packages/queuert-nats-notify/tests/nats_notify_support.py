"""Helpers of the NATS notify adapter tests (a module of its own so other packages' tests never clash)."""

from __future__ import annotations

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
