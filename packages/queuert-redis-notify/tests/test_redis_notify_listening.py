"""Subscribing on a slow network: a listener returns only once Redis confirmed its subscription,
also when another listener's subscription of the same channel is already on its way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from queuert_conformance.notify_worker import subscribers_wait_for_a_subscription_on_its_way
from queuert_conformance.resilience import TcpProxy
from redis_notify_support import REDIS_URL, make_adapter


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    target = urlsplit(REDIS_URL)
    async with TcpProxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        yield proxy


async def test_a_second_chain_listener_waits_for_the_first_ones_subscription(
    proxy: TcpProxy, prefix: str
) -> None:
    url = urlsplit(REDIS_URL)._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    listening = make_adapter(prefix, "listening", url)
    publishing = make_adapter(prefix, "publishing")
    try:
        await subscribers_wait_for_a_subscription_on_its_way(listening, publishing, proxy)
    finally:
        await listening.close()
        await publishing.close()
