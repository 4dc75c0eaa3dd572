"""Fixtures of the NATS notify adapter tests: real NATS with JetStream at 127.0.0.1:4222
(``QUEUERT_NATS_URL``), and PostgreSQL (``QUEUERT_PG_DSN``, one schema per test) for the worker-level tests.

Every test gets its own subject prefix and its own KV bucket, so concurrent runs never collide.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import StorageType
from nats.js.errors import NotFoundError
from nats_notify_support import (
    NATS_URL,
    PG_DSN,
    NatsServer,
    drop_schema,
    make_adapter,
    nats_server_binary,
    unique_schema,
)
from queuert_conformance import NotifyHarness
from queuert_conformance.resilience import TcpProxy
from queuert_nats import NatsNotifyAdapter
from queuert_postgres import PgStateAdapter


@pytest.fixture
def prefix() -> str:
    """A subject prefix and bucket name no other test (or concurrent test run) uses."""
    return f"qt_{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def admin(prefix: str) -> AsyncIterator[Client]:
    """A plain connection to the shared server; deletes the test's bucket afterwards."""
    client = await nats.connect(NATS_URL)
    yield client
    try:
        await client.jetstream().delete_key_value(prefix)
    except NotFoundError:
        pass  # the test never created it
    finally:
        await client.close()


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    target = urlsplit(NATS_URL)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 4222)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture(params=["owned", "owned-without-kv", "client"])
async def queuert_notify_harness(
    request: pytest.FixtureRequest, prefix: str, proxy: TcpProxy, admin: Client
) -> AsyncIterator[NotifyHarness]:
    """Three setups: the adapter's own connection with a KV bucket it creates; the same without KV (no
    budgets); a connection and a ``KeyValue`` the application made, its callbacks wired to the adapter.
    The adapter under test reaches the server through a proxy, so ``interrupt`` can cut its connection.
    """
    mode = request.param
    with_kv = mode != "owned-without-kv"
    closing: list[NatsNotifyAdapter | Client] = []
    if mode == "client":
        client = Client()
        box: list[NatsNotifyAdapter] = []

        async def disconnected() -> None:
            await box[0].on_disconnected()

        async def reconnected() -> None:
            await box[0].on_reconnected()

        await client.connect(
            f"nats://127.0.0.1:{proxy.port}",
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.1,  # type: ignore[arg-type]
        )
        kv = await client.jetstream().create_key_value(
            bucket=prefix, ttl=60, history=1, storage=StorageType.MEMORY
        )
        adapter = NatsNotifyAdapter(client=client, subject_prefix=prefix, wake_hint_bucket=kv)
        box.append(adapter)
        closing.append(client)
    else:
        options: dict[str, object] = {} if with_kv else {"wake_hint_bucket": None}
        adapter = make_adapter(f"nats://127.0.0.1:{proxy.port}", prefix, **options)

    async def open_another() -> NatsNotifyAdapter:
        other = make_adapter(NATS_URL, prefix, **({} if with_kv else {"wake_hint_bucket": None}))
        closing.insert(0, other)
        return other

    async def interrupt() -> None:
        assert await proxy.drop() >= 1

    yield NotifyHarness(
        adapter=adapter,
        open_another=open_another,
        interrupt=interrupt,
        wake_hint_budgets=with_kv,
    )
    await adapter.close()
    for item in closing:
        await item.close()


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    server = NatsServer(nats_server_binary(), str(tmp_path))
    yield server
    await server.crash()


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
