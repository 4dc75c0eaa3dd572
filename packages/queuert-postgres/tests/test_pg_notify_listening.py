"""The LISTEN connection of PgNotifyAdapter: a subscriber returns only once the server listens for
it, whatever else is under way on that one connection (another subscriber's LISTEN, the ping)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from pg_helpers import DSN
from queuert_conformance.notify_worker import (
    ListenerCalls,
    subscribers_wait_for_a_subscription_on_its_way,
)
from queuert_conformance.resilience import TcpProxy
from queuert_postgres import PgNotifyAdapter


def through(proxy: TcpProxy) -> str:
    """The test DSN with its host and port replaced by the proxy's."""
    parts = urlsplit(DSN)
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}").geturl()


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    parts = urlsplit(DSN)
    async with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        yield proxy


@pytest.fixture
def prefix() -> str:
    return f"qtl{uuid.uuid4().hex[:12]}"


async def test_a_second_chain_listener_waits_for_the_first_ones_listen(
    proxy: TcpProxy, prefix: str
) -> None:
    async with (
        PgNotifyAdapter(through(proxy), channel_prefix=prefix) as listening,
        PgNotifyAdapter(DSN, channel_prefix=prefix) as publishing,
    ):
        await subscribers_wait_for_a_subscription_on_its_way(listening, publishing, proxy)


async def test_a_listen_during_the_ping_waits_for_it_and_listens(
    proxy: TcpProxy, prefix: str
) -> None:
    """The ping and a LISTEN share the connection, which runs one statement at a time: a subscriber
    arriving while the ping is under way waits for it instead of failing, and no reconnect
    happens."""
    async with (
        PgNotifyAdapter(through(proxy), channel_prefix=prefix, ping_interval=0.05) as listening,
        PgNotifyAdapter(DSN, channel_prefix=prefix) as publishing,
    ):
        await listening.listen_job_scheduled(["warm"], ListenerCalls())  # connected
        proxy.hold()
        try:
            await asyncio.wait_for(proxy.holding.wait(), 10)  # the ping is on its way, held
            subscribing = asyncio.ensure_future(
                listening.listen_chain_closed("chain", (calls := ListenerCalls()).bind("chain"))
            )
            for _ in range(100):  # the subscriber gets every chance to reach the connection
                await asyncio.sleep(0)
        finally:
            proxy.release()
        await asyncio.wait_for(subscribing, 10)
        await publishing.notify_chain_closed("chain")
        await calls.wait_for(1, 10)
        assert calls.calls == ["chain"]
        assert listening.reconnects == 0
