"""Resilience on a Redis server of the test's own: crashes, a silent drop, a server down at start-up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from queuert.errors import NotifyAdapterClosedError
from queuert.notify import NotifyAdapter
from queuert_redis import RedisNotifyAdapter
from redis.asyncio import Redis
from redis_notify_support import REDIS_URL, Calls, LogWatcher, RedisServer


def adapter_for(url: str, prefix: str, **options: float) -> RedisNotifyAdapter:
    settings: dict[str, float] = {
        "reconnect_delay": 0.05,
        "max_reconnect_delay": 0.5,
        "listen_timeout": 30.0,
        "publish_timeout": 1.0,
    }
    settings.update(options)
    return RedisNotifyAdapter(url, prefix=prefix, **settings)  # type: ignore[arg-type]


async def test_listeners_recover_after_redis_crashes_and_restarts(
    redis_server: RedisServer, prefix: str
) -> None:
    await redis_server.start()
    adapter = adapter_for(redis_server.url, prefix)
    try:
        scheduled, chain, ownership, late = Calls(), Calls(), Calls(), Calls()
        await adapter.listen_job_scheduled(["mail", "sms"], scheduled)
        await adapter.listen_chain_closed("chain-1", chain.bind("chain-1"))
        await adapter.listen_job_ownership_lost("job-1", ownership.bind("job-1"))
        await adapter.notify_job_scheduled("mail")
        await scheduled.wait_for(1)

        await redis_server.crash()

        # While Redis is gone nothing raises, nothing hangs, and failures are counted.
        await adapter.notify_job_scheduled("mail")
        await adapter.notify_chain_closed("chain-1")
        await adapter.provide_wake_hint("mail", 3)
        assert await adapter.consume_wake_hint("mail") is True
        assert adapter.publish_errors >= 3
        assert adapter.wake_hint_errors >= 1
        await asyncio.wait_for(adapter.listen_chain_closed("chain-2", late.bind("chain-2")), 5)

        await redis_server.start()

        # Every listener, including the one added during the outage, is told to re-check.
        await scheduled.wait_for(3)
        assert sorted(scheduled.calls[1:]) == ["mail", "sms"]
        await chain.wait_for(1)
        await ownership.wait_for(1)
        await late.wait_for(1)
        assert adapter.reconnects >= 1

        # And messages flow again, published through the adapter's own (reconnected) pool.
        errors_before = adapter.publish_errors
        await adapter.notify_chain_closed("chain-2")
        await late.wait_for(2)
        await adapter.notify_job_scheduled("sms")
        await scheduled.wait_for(4)
        assert scheduled.calls[3] == "sms"
        assert adapter.publish_errors == errors_before
    finally:
        await adapter.close()


async def test_redis_down_at_start_up(redis_server: RedisServer, prefix: str) -> None:
    redis_server.reserve_port()
    adapter = adapter_for(redis_server.url, prefix)
    try:
        scheduled = Calls()
        # Returns promptly although listen_timeout is 30 s: the server is known to be unreachable.
        await asyncio.wait_for(adapter.listen_job_scheduled(["mail"], scheduled), 5)
        await adapter.notify_job_scheduled("mail")
        await adapter.provide_wake_hint("mail", 1)
        assert await adapter.consume_wake_hint("mail") is True
        assert adapter.publish_errors == 2
        assert scheduled.calls == []

        await redis_server.start()

        await scheduled.wait_for(1)  # the catch-up call: "you may have missed something"
        assert scheduled.calls == ["mail"]
        await adapter.notify_job_scheduled("mail")
        await scheduled.wait_for(2)
        await adapter.provide_wake_hint("mail", 1)
        assert [await adapter.consume_wake_hint("mail") for _ in range(2)] == [True, False]
    finally:
        await adapter.close()


async def test_a_silent_drop_is_found_by_the_keepalive(
    redis_server: RedisServer, prefix: str, watch_log: Callable[[str], LogWatcher]
) -> None:
    await redis_server.start()
    adapter = adapter_for(redis_server.url, prefix, keepalive_interval=0.2, publish_timeout=0.5)
    try:
        chain = Calls()
        await adapter.listen_chain_closed("chain-1", chain.bind("chain-1"))
        lost = watch_log("subscription to Redis lost")

        redis_server.pause()  # sockets stay open, nothing answers: no error reaches the client
        try:
            await asyncio.wait_for(lost.seen.wait(), 10)
        finally:
            redis_server.resume()

        await chain.wait_for(1)  # catch-up once the subscription is back
        await adapter.notify_chain_closed("chain-1")
        await chain.wait_for(2)
    finally:
        await adapter.close()


async def test_close_while_redis_is_down_leaves_no_task_behind(
    redis_server: RedisServer, prefix: str
) -> None:
    redis_server.reserve_port()
    before = asyncio.all_tasks()
    adapter = adapter_for(redis_server.url, prefix)
    await adapter.listen_job_scheduled(["mail"], Calls())
    await adapter.listen_chain_closed("chain", lambda: None)

    await asyncio.wait_for(adapter.close(), 5)

    assert asyncio.all_tasks() <= before
    with pytest.raises(NotifyAdapterClosedError):
        await adapter.notify_job_scheduled("mail")


async def test_a_client_passed_in_is_used_and_left_open(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        adapter = RedisNotifyAdapter(client=client, prefix=prefix)
        scheduled = Calls()
        await adapter.listen_job_scheduled(["mail"], scheduled)
        await adapter.notify_job_scheduled("mail")
        await scheduled.wait_for(1)
        await adapter.provide_wake_hint("mail", 1)
        assert await client.get(f"{prefix}:hint:mail") == "1"
        assert 0 < await client.pttl(f"{prefix}:hint:mail") <= 60_000
        assert [await adapter.consume_wake_hint("mail") for _ in range(2)] == [True, False]
        await adapter.close()

        assert await client.ping() is True
    finally:
        await client.delete(f"{prefix}:hint:mail")
        await client.aclose()


async def test_prefixes_keep_applications_apart(prefix: str) -> None:
    first = RedisNotifyAdapter(REDIS_URL, prefix=f"{prefix}-a")
    second = RedisNotifyAdapter(REDIS_URL, prefix=f"{prefix}-b")
    try:
        on_first, on_second = Calls(), Calls()
        await first.listen_job_scheduled(["mail"], on_first)
        await second.listen_job_scheduled(["mail"], on_second)
        await second.provide_wake_hint("mail", 1)

        await second.notify_job_scheduled("mail")
        await first.notify_job_scheduled("mail")
        await on_first.wait_for(1)
        await on_second.wait_for(1)
        # first has no budget for "mail" (True, untracked); second has one unit.
        assert [await first.consume_wake_hint("mail") for _ in range(2)] == [True, True]
        assert [await second.consume_wake_hint("mail") for _ in range(2)] == [True, False]
        # Same-channel order: first's own message came after second's and was the only one it saw.
        await first.notify_job_scheduled("mail")
        await on_first.wait_for(2)
        assert on_second.calls == ["mail"]
    finally:
        await first.close()
        await second.close()


async def test_configuration_is_checked() -> None:
    adapter = RedisNotifyAdapter(REDIS_URL)
    assert isinstance(adapter, NotifyAdapter)
    await adapter.close()
    with pytest.raises(ValueError, match="exactly one"):
        RedisNotifyAdapter()
    with pytest.raises(ValueError, match="exactly one"):
        RedisNotifyAdapter(REDIS_URL, client=Redis())
    with pytest.raises(ValueError, match="invalid Redis prefix"):
        RedisNotifyAdapter(REDIS_URL, prefix="has space")
    with pytest.raises(ValueError, match="invalid Redis prefix"):
        RedisNotifyAdapter(REDIS_URL, prefix="")
