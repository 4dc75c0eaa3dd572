"""Resilience on a nats-server of the test's own: a crash and restart, a server down at start-up."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client
from nats_notify_support import NATS_URL, Calls, NatsServer, make_adapter
from queuert.errors import NotifyAdapterClosedError
from queuert.notify import NotifyAdapter
from queuert_nats import NatsNotifyAdapter


async def test_listeners_recover_after_nats_crashes_and_restarts(
    nats_server: NatsServer, prefix: str
) -> None:
    await nats_server.start()
    adapter = make_adapter(nats_server.url, prefix, listen_timeout=30.0, publish_timeout=1.0)
    try:
        scheduled, chain, ownership, late = Calls(), Calls(), Calls(), Calls()
        await adapter.listen_job_scheduled(["mail", "sms"], scheduled)
        await adapter.listen_chain_closed("chain-1", chain.bind("chain-1"))
        await adapter.listen_job_ownership_lost("job-1", ownership.bind("job-1"))
        await adapter.notify_job_scheduled("mail")
        await scheduled.wait_for(1)
        await adapter.provide_wake_hint("mail", 1)
        assert await adapter.consume_wake_hint("mail") is True

        await nats_server.crash()

        # While NATS is gone nothing raises, nothing hangs, and failures are counted.
        errors_before = adapter.publish_errors
        await adapter.notify_job_scheduled("mail")
        await adapter.notify_chain_closed("chain-1")
        assert await adapter.consume_wake_hint("mail") is True
        assert adapter.publish_errors >= errors_before + 2
        assert adapter.wake_hint_errors >= 1
        await asyncio.wait_for(adapter.listen_chain_closed("chain-2", late.bind("chain-2")), 5)

        await nats_server.start()

        # Every listener, including the one added during the outage, is told to re-check.
        await scheduled.wait_for(3)
        assert sorted(scheduled.calls[1:]) == ["mail", "sms"]
        await chain.wait_for(1)
        await ownership.wait_for(1)
        await late.wait_for(1)
        assert adapter.reconnects >= 1

        errors_before = adapter.publish_errors
        await adapter.notify_chain_closed("chain-2")
        await late.wait_for(2)
        await adapter.notify_job_scheduled("sms")
        await scheduled.wait_for(4)
        assert scheduled.calls[3] == "sms"
        assert adapter.publish_errors == errors_before
        # A restart loses a memory-storage bucket; the adapter created it again: budgets work again.
        await adapter.provide_wake_hint("sms", 1)
        assert [await adapter.consume_wake_hint("sms") for _ in range(2)] == [True, False]
    finally:
        await adapter.close()


async def test_nats_down_at_start_up(nats_server: NatsServer, prefix: str) -> None:
    nats_server.reserve_port()
    adapter = make_adapter(nats_server.url, prefix, listen_timeout=30.0, publish_timeout=1.0)
    try:
        scheduled = Calls()
        # Returns promptly although listen_timeout is 30 s: the first connection attempt failed.
        await asyncio.wait_for(adapter.listen_job_scheduled(["mail"], scheduled), 5)
        await adapter.notify_job_scheduled("mail")
        await adapter.provide_wake_hint("mail", 1)
        assert await adapter.consume_wake_hint("mail") is True
        assert adapter.publish_errors == 2
        assert adapter.wake_hint_errors == 1
        assert scheduled.calls == []

        await nats_server.start()

        await scheduled.wait_for(1)  # the catch-up call: "you may have missed something"
        assert scheduled.calls == ["mail"]
        await adapter.notify_job_scheduled("mail")
        await scheduled.wait_for(2)
        await adapter.provide_wake_hint("mail", 1)
        assert [await adapter.consume_wake_hint("mail") for _ in range(2)] == [True, False]
    finally:
        await adapter.close()


async def test_close_while_nats_is_down_leaves_no_task_behind(
    nats_server: NatsServer, prefix: str
) -> None:
    nats_server.reserve_port()
    before = asyncio.all_tasks()
    adapter = make_adapter(nats_server.url, prefix)
    await adapter.listen_job_scheduled(["mail"], Calls())
    await adapter.listen_chain_closed("chain", lambda: None)

    await asyncio.wait_for(adapter.close(), 5)

    assert asyncio.all_tasks() <= before
    with pytest.raises(NotifyAdapterClosedError):
        await adapter.notify_job_scheduled("mail")


async def test_a_client_passed_in_is_left_open(prefix: str) -> None:
    client = Client()
    await client.connect(NATS_URL)
    try:
        adapter = NatsNotifyAdapter(client=client, subject_prefix=prefix)
        scheduled = Calls()
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
        on_first, on_second = Calls(), Calls()
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
    with pytest.raises(ValueError, match="exactly one"):
        NatsNotifyAdapter()
    with pytest.raises(ValueError, match="exactly one"):
        NatsNotifyAdapter(NATS_URL, client=Client())
    for bad in ("has space", "", "a..b", "a.*", "a.>", ".a"):
        with pytest.raises(ValueError, match="invalid NATS subject prefix"):
            NatsNotifyAdapter(NATS_URL, subject_prefix=bad)
    with pytest.raises(ValueError, match="invalid KV bucket"):
        NatsNotifyAdapter(NATS_URL, wake_hint_bucket="a.b")
