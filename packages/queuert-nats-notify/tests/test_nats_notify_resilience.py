"""Resilience on a nats-server of the test's own: a crash and restart, a server down at start-up."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from nats_notify_support import NATS_URL, NatsServer, make_adapter
from queuert import ConfigurationError
from queuert.notify import NotifyAdapter
from queuert_conformance.notify_worker import (
    ListenerCalls,
    adapter_down_at_start_up,
    close_while_down_leaves_no_task_behind,
    listeners_recover_after_a_crash,
    silent_peer,
    silent_server_is_given_up_on,
)
from queuert_nats import NatsNotifyAdapter


async def test_listeners_recover_after_nats_crashes_and_restarts(
    nats_server: NatsServer, prefix: str
) -> None:
    await nats_server.start()
    adapter = make_adapter(nats_server.url, prefix, listen_timeout=30.0, publish_timeout=1.0)
    try:
        # A restart loses the memory-storage KV bucket; the adapter creates it again.
        await listeners_recover_after_a_crash(
            adapter,
            crash_server=nats_server.crash,
            start_server=nats_server.start,
            server="NATS",
        )
    finally:
        await adapter.close()


async def test_nats_down_at_start_up(nats_server: NatsServer, prefix: str) -> None:
    nats_server.reserve_port()
    # listen_timeout is 30 s: listen_* must return promptly because the first connection attempt failed.
    adapter = make_adapter(nats_server.url, prefix, listen_timeout=30.0, publish_timeout=1.0)
    try:
        await adapter_down_at_start_up(adapter, start_server=nats_server.start)
    finally:
        await adapter.close()


async def test_a_server_that_accepts_and_never_answers_is_given_up_on(prefix: str) -> None:
    """Connecting (the TCP connect succeeds, the server's INFO never comes) and every call are
    bounded by ``publish_timeout`` / ``listen_timeout``: nothing waits on the silent peer."""
    async with silent_peer() as (host, port, accepted):
        adapter = make_adapter(
            f"nats://{host}:{port}", prefix, publish_timeout=1.0, listen_timeout=1.0
        )
        try:
            await silent_server_is_given_up_on(adapter, accepted, bound=4.0)
        finally:
            await adapter.close()


async def test_close_while_nats_is_down_leaves_no_task_behind(
    nats_server: NatsServer, prefix: str
) -> None:
    nats_server.reserve_port()
    await close_while_down_leaves_no_task_behind(lambda: make_adapter(nats_server.url, prefix))


async def test_a_client_passed_in_is_left_open(prefix: str) -> None:
    client = Client()
    await client.connect(NATS_URL)
    try:
        adapter = NatsNotifyAdapter(client=client, subject_prefix=prefix)
        scheduled = ListenerCalls()
        await adapter.listen_job_scheduled(["mail"], scheduled)
        await adapter.notify_job_scheduled("mail")
        await scheduled.wait_for(1)
        assert adapter.wake_hint_budgets is False
        assert await adapter.consume_wake_hint("mail") is True
        await adapter.close()

        assert client.is_connected
        # The adapter's subscriptions went away with it.
        assert await _subscriptions_of(client) == 0
    finally:
        await client.close()


async def _subscriptions_of(client: Client) -> int:
    await client.flush()
    return len(client._subs)  # nats-py keeps no public count


async def test_a_missing_bucket_is_not_created_unless_asked(prefix: str) -> None:
    adapter = make_adapter(NATS_URL, prefix, create_wake_hint_bucket=False)
    try:
        await adapter.provide_wake_hint("mail", 1)
        assert await adapter.consume_wake_hint("mail") is True
        assert adapter.publish_errors == 1
        assert adapter.wake_hint_errors == 1
    finally:
        await adapter.close()


async def test_prefixes_keep_applications_apart(prefix: str) -> None:
    first = make_adapter(NATS_URL, f"{prefix}.a", wake_hint_bucket=None)
    second = make_adapter(NATS_URL, f"{prefix}.b", wake_hint_bucket=None)
    try:
        on_first, on_second = ListenerCalls(), ListenerCalls()
        await first.listen_job_scheduled(["mail"], on_first)
        await second.listen_job_scheduled(["mail"], on_second)

        await second.notify_job_scheduled("mail")
        await first.notify_job_scheduled("mail")
        await on_first.wait_for(1)
        await on_second.wait_for(1)
        await first.notify_job_scheduled("mail")
        await on_first.wait_for(2)
        assert on_second.calls == ["mail"]
    finally:
        await first.close()
        await second.close()


async def test_configuration_is_checked() -> None:
    adapter = NatsNotifyAdapter(NATS_URL)
    assert isinstance(adapter, NotifyAdapter)
    await adapter.close()
    with pytest.raises(ConfigurationError, match="exactly one"):
        NatsNotifyAdapter()
    with pytest.raises(ConfigurationError, match="exactly one"):
        NatsNotifyAdapter(NATS_URL, client=Client())
    for bad in ("has space", "", "a..b", "a.*", "a.>", ".a"):
        with pytest.raises(ConfigurationError, match="invalid NATS subject prefix"):
            NatsNotifyAdapter(NATS_URL, subject_prefix=bad)
    with pytest.raises(ConfigurationError, match="invalid KV bucket"):
        NatsNotifyAdapter(NATS_URL, wake_hint_bucket="a.b")
