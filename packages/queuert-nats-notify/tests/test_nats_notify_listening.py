"""Subscribing on a slow network: a listener returns only once the server has its subscription,
also when another listener's subscription of the same subject is already on its way."""

from __future__ import annotations

from nats_notify_support import NATS_URL, make_adapter
from queuert_conformance.notify_worker import subscribers_wait_for_a_subscription_on_its_way
from queuert_conformance.resilience import TcpProxy


async def test_a_second_chain_listener_waits_for_the_first_ones_subscription(
    proxy: TcpProxy, prefix: str
) -> None:
    listening = make_adapter(f"nats://127.0.0.1:{proxy.port}", prefix, wake_hint_bucket=None)
    publishing = make_adapter(NATS_URL, prefix, wake_hint_bucket=None)
    try:
        await subscribers_wait_for_a_subscription_on_its_way(listening, publishing, proxy)
    finally:
        await listening.close()
        await publishing.close()
