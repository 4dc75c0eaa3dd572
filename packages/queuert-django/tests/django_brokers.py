"""The brokers ``QUEUERT["NOTIFY"]`` can name, seen from a test: subscribe to the channel of
scheduled jobs, publish a marker on it, and read what arrives (synchronously, as Django's tests run).
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

REDIS_URL = os.environ.get("QUEUERT_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("QUEUERT_NATS_URL", "nats://127.0.0.1:4222")
BROKERS = {"redis": REDIS_URL, "nats": NATS_URL}
"""The servers of the tests of wake-ups through a broker, by name."""


class Subscription(Protocol):
    def publish(self, data: str) -> None:
        """Publish ``data`` on the channel; returns once the server has it."""

    def next(self, timeout: float) -> str | None:
        """The next message's data, or ``None`` after ``timeout`` seconds."""


@contextmanager
def scheduled_jobs(broker: str, prefix: str, timeout: float) -> Iterator[Subscription]:
    """A subscription to the channel on which ``broker``'s notify adapter with ``prefix`` announces
    scheduled jobs (its data: the job type's name), open once this returns."""
    if broker == "redis":
        with _redis(f"{prefix}:sched", timeout) as redis:
            yield redis
    else:
        with _nats(f"{prefix}.sched", timeout) as nats:
            yield nats


class _RedisSubscription:
    def __init__(self, server: Any, pubsub: Any, channel: str) -> None:
        self._server, self._pubsub, self._channel = server, pubsub, channel

    def publish(self, data: str) -> None:
        self._server.publish(self._channel, data)

    def next(self, timeout: float) -> str | None:
        message = self._pubsub.get_message(timeout=timeout)
        return None if message is None else message["data"].decode()


@contextmanager
def _redis(channel: str, timeout: float) -> Iterator[Subscription]:
    import redis

    with redis.Redis.from_url(REDIS_URL) as server, server.pubsub() as pubsub:
        pubsub.subscribe(channel)
        confirmed = pubsub.get_message(timeout=timeout)
        assert confirmed is not None and confirmed["type"] == "subscribe"
        yield _RedisSubscription(server, pubsub, channel)


class _NatsSubscription:
    """nats-py is asyncio only: its client runs on an event loop in a thread of its own."""

    def __init__(self, subject: str, timeout: float) -> None:
        self._subject, self._timeout = subject, timeout
        self._received: queue.Queue[str] = queue.Queue()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client: Any = None

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(self._timeout)

    async def _open(self) -> None:
        import nats

        async def received(message: Any) -> None:
            self._received.put(message.data.decode())

        self._client = await nats.connect(NATS_URL)
        await self._client.subscribe(self._subject, cb=received)
        await self._client.flush()

    async def _publish(self, data: str) -> None:
        await self._client.publish(self._subject, data.encode())
        await self._client.flush()

    def open(self) -> None:
        self._run(self._open())

    def publish(self, data: str) -> None:
        self._run(self._publish(data))

    def next(self, timeout: float) -> str | None:
        try:
            return self._received.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        try:
            if self._client is not None:
                self._run(self._client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self._timeout)
            self._loop.close()


@contextmanager
def _nats(subject: str, timeout: float) -> Iterator[Subscription]:
    subscription = _NatsSubscription(subject, timeout)
    try:
        subscription.open()
        yield subscription
    finally:
        subscription.close()
