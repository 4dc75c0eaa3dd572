"""Resilience on a Redis server of the test's own: crashes, a silent drop, a server down at start-up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
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
from queuert_redis import RedisNotifyAdapter
from redis.asyncio import Redis
from redis_notify_support import REDIS_URL, LogWatcher, RedisServer


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
        await listeners_recover_after_a_crash(
            adapter,
            crash_server=redis_server.crash,
            start_server=redis_server.start,
            server="Redis",
        )
    finally:
        await adapter.close()


async def test_redis_down_at_start_up(redis_server: RedisServer, prefix: str) -> None:
    redis_server.reserve_port()
    # listen_timeout is 30 s: listen_* must return promptly because the server is known unreachable.
    adapter = adapter_for(redis_server.url, prefix)
    try:
        await adapter_down_at_start_up(adapter, start_server=redis_server.start)
    finally:
        await adapter.close()


async def test_a_silent_drop_is_found_by_the_keepalive(
    redis_server: RedisServer, prefix: str, watch_log: Callable[[str], LogWatcher]
) -> None:
    await redis_server.start()
    adapter = adapter_for(redis_server.url, prefix, keepalive_interval=0.2, publish_timeout=0.5)
    try:
        chain = ListenerCalls()
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


async def test_a_server_that_accepts_and_never_answers_is_given_up_on(prefix: str) -> None:
    """Connecting (the TCP connect succeeds, the handshake gets no answer) and every call are
    bounded by ``publish_timeout`` / ``listen_timeout``: nothing waits on the silent peer."""
    async with silent_peer() as (host, port, accepted):
        adapter = adapter_for(
            f"redis://{host}:{port}", prefix, publish_timeout=0.5, listen_timeout=0.5
        )
        try:
            await silent_server_is_given_up_on(adapter, accepted, bound=3.0)
        finally:
            await adapter.close()


async def test_close_while_redis_is_down_leaves_no_task_behind(
    redis_server: RedisServer, prefix: str
) -> None:
    redis_server.reserve_port()
    await close_while_down_leaves_no_task_behind(lambda: adapter_for(redis_server.url, prefix))


async def test_a_client_passed_in_is_used_and_left_open(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        adapter = RedisNotifyAdapter(client=client, prefix=prefix)
        scheduled = ListenerCalls()
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
        on_first, on_second = ListenerCalls(), ListenerCalls()
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
    with pytest.raises(ConfigurationError, match="exactly one"):
        RedisNotifyAdapter()
    with pytest.raises(ConfigurationError, match="exactly one"):
        RedisNotifyAdapter(REDIS_URL, client=Redis())
    with pytest.raises(ConfigurationError, match="invalid Redis prefix"):
        RedisNotifyAdapter(REDIS_URL, prefix="has space")
    with pytest.raises(ConfigurationError, match="invalid Redis prefix"):
        RedisNotifyAdapter(REDIS_URL, prefix="")
