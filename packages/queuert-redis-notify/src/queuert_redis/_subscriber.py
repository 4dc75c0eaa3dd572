"""The adapter's one subscriber connection: connect, subscribe, read, and start over after a drop.

Built on a bare redis-py ``Connection`` rather than ``PubSub`` so that a drop is seen (``PubSub``
silently reconnects, and the adapter must know when to hand out catch-up calls). The connection
subscribes to a topic's channel the first time a listener of that topic appears and stays subscribed
for the adapter's lifetime: no SUBSCRIBE/UNSUBSCRIBE churn around every wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from queuert_redis._listeners import Listeners

__all__ = ["Subscriber"]

logger = logging.getLogger("queuert.notify.redis")

CONNECTION_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class Subscriber:
    def __init__(
        self,
        *,
        make_connection: Callable[[], AbstractConnection],
        channels: Mapping[str, str],
        listeners: Mapping[str, Listeners],
        reconnect_delay: float,
        max_reconnect_delay: float,
        keepalive_interval: float,
    ) -> None:
        self._make_connection = make_connection
        self._channels = dict(channels)
        self._topics = {channel.encode(): topic for topic, channel in channels.items()}
        self._listeners = listeners
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._keepalive_interval = keepalive_interval
        self._wanted: set[str] = set()
        self._live: set[str] = set()
        self._connection: AbstractConnection | None = None
        self._down = False
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._troubled = False
        self._closed = False
        self.reconnects = 0
        """How many times the subscription came back after a drop or a failed start."""

    async def ensure(self, topic: str, timeout: float) -> bool:
        """Subscribes to ``topic`` (once per lifetime); True once live, False if Redis is unreachable.

        Waits at most ``timeout`` seconds, and not at all while the server is known to be down.
        """
        if topic not in self._wanted:
            self._wanted.add(topic)
            connection = self._connection
            if connection is not None and connection.is_connected:
                # Checked and sent without an await in between: never on a connection being replaced.
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await connection.send_command(
                        "SUBSCRIBE", self._channels[topic], check_health=False
                    )
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="queuert_redis.subscriber"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while topic not in self._live and not self._down and not self._closed:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            changed = self._changed
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        return topic in self._live

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._signal()

    def _signal(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _backoff(self, failures: int) -> float:
        ceiling = min(self._max_reconnect_delay, self._reconnect_delay * 2.0 ** (failures - 1))
        return float(ceiling * random.uniform(0.5, 1.0))

    async def _run(self) -> None:
        failures = 0  # consecutive attempts that never got a reply
        while True:
            if failures:
                await asyncio.sleep(self._backoff(failures))
            connection: AbstractConnection | None = None
            healthy = False
            try:
                connection = self._make_connection()
                await connection.connect()  # type: ignore[no-untyped-call]
                self._connection = connection
                self._down = False
                self._signal()
                if self._wanted:
                    await connection.send_command(
                        "SUBSCRIBE",
                        *(self._channels[topic] for topic in sorted(self._wanted)),
                        check_health=False,
                    )
                awaiting_pong = False
                while True:
                    response = await connection.read_response(timeout=self._keepalive_interval)
                    if response is None:
                        if awaiting_pong:
                            raise RedisConnectionError(
                                "no answer to PING on the subscriber connection"
                            )
                        await connection.send_command("PING", check_health=False)
                        awaiting_pong = True
                        continue
                    awaiting_pong = False
                    if not healthy:
                        healthy = True
                        if self._troubled:
                            self._troubled = False
                            self.reconnects += 1
                            logger.info(
                                "queuert notify subscription to Redis is back",
                                extra={"queuert_reconnects": self.reconnects},
                            )
                    self._handle(response)
            except CONNECTION_ERRORS as error:
                self._troubled = True
                if healthy:
                    failures = 1
                    logger.warning(
                        "queuert notify subscription to Redis lost; reconnecting",
                        extra={"queuert_error": repr(error)},
                    )
                else:
                    failures += 1
                    logger.log(
                        logging.WARNING if failures == 1 else logging.DEBUG,
                        "queuert notify cannot reach Redis; retrying",
                        extra={"queuert_error": repr(error), "queuert_attempt": failures},
                    )
            except Exception:
                # A bug, not an outage: say so loudly, but keep the adapter alive.
                self._troubled = True
                failures = max(failures + 1, 3)
                logger.exception("queuert notify subscriber failed unexpectedly; restarting it")
            finally:
                self._connection = None
                self._live.clear()
                self._down = True
                for listeners in self._listeners.values():
                    listeners.mark_stale()
                self._signal()
                if connection is not None:
                    await connection.disconnect(nowait=True)

    def _handle(self, response: object) -> None:
        if not isinstance(response, list) or len(response) < 2:
            return
        kind = response[0]
        topic = self._topics.get(response[1]) if isinstance(response[1], bytes) else None
        if topic is None:
            return
        if kind == b"message" and len(response) == 3 and isinstance(response[2], bytes):
            self._listeners[topic].dispatch(response[2].decode("utf-8", "replace"))
        elif kind == b"subscribe" and topic not in self._live:
            self._live.add(topic)
            self._listeners[topic].catch_up()
            self._signal()
