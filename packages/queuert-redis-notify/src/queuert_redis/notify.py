"""The Redis (and Valkey) notify adapter."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from queuert.errors import ConfigurationError, NotifyAdapterClosedError
from queuert.notify import Unsubscribe
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from queuert_redis._listeners import Listener, Listeners
from queuert_redis._scripts import CONSUME_WAKE_HINT, PROVIDE_WAKE_HINT
from queuert_redis._subscriber import CONNECTION_ERRORS, Subscriber

__all__ = ["RedisNotifyAdapter"]

logger = logging.getLogger("queuert.notify.redis")

_PREFIX = re.compile(r"[A-Za-z0-9_.:{}\-]+")
SCHEDULED, CHAIN_CLOSED, OWNERSHIP_LOST = "sched", "chainc", "owls"


class RedisNotifyAdapter:
    """Notifications over Redis pub/sub; wake-hint budgets in Redis keys.

    Pass a ``url`` (the adapter owns its connections) or a ``client`` of your own (used to publish and
    for the budgets; the adapter never closes it). Either way the adapter opens one more connection of
    its own, its subscriber, the first time something listens, and keeps it for its lifetime.

    Channels are ``{prefix}:sched`` (payload: a job type name), ``{prefix}:chainc`` (a chain id) and
    ``{prefix}:owls`` (a job id); budgets live in ``{prefix}:hint:{type name}``. Give each application
    sharing a server its own ``prefix``.

    Nothing here raises on a connection problem. ``notify_*`` and ``provide_wake_hint`` log and count
    failures in :attr:`publish_errors`; ``consume_wake_hint`` answers True (wake up) and counts them in
    :attr:`wake_hint_errors`; ``listen_*`` returns even when Redis is down. The subscriber reconnects by
    itself with exponential backoff and jitter; each time its subscription is back, every listener that
    may have missed something gets one catch-up call (per type for job-scheduled listeners).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | None = None,
        prefix: str = "queuert",
        client_name: str | None = None,
        wake_hint_ttl: float = 60.0,
        publish_timeout: float = 2.0,
        listen_timeout: float = 5.0,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 10.0,
        keepalive_interval: float = 15.0,
    ) -> None:
        if (url is None) == (client is None):
            raise ConfigurationError("pass exactly one of url= or client=")
        if not _PREFIX.fullmatch(prefix):
            raise ConfigurationError(
                f"invalid Redis prefix {prefix!r}: must match {_PREFIX.pattern}"
            )
        if wake_hint_ttl <= 0 or publish_timeout <= 0 or listen_timeout < 0:
            raise ConfigurationError("wake_hint_ttl and publish_timeout must be positive")
        self.prefix = prefix
        self.client_name = client_name or f"queuert-notify:{prefix}"
        self._publish_timeout = publish_timeout
        self._listen_timeout = listen_timeout
        self._wake_hint_ttl_ms = max(1, math.ceil(wake_hint_ttl * 1000))
        self._owns_client = client is None
        if client is None:
            assert url is not None
            client = Redis.from_url(
                url,
                client_name=self.client_name,
                socket_timeout=publish_timeout,
                socket_connect_timeout=publish_timeout,
                # One immediate retry replaces a pooled connection that died with the server.
                retry=Retry(NoBackoff(), 1),
            )
        self._client: Redis = client
        self._provide_script = client.register_script(PROVIDE_WAKE_HINT)
        self._consume_script = client.register_script(CONSUME_WAKE_HINT)
        self._channels = {
            topic: f"{prefix}:{topic}" for topic in (SCHEDULED, CHAIN_CLOSED, OWNERSHIP_LOST)
        }
        self._listeners = {topic: Listeners(topic) for topic in self._channels}
        self._subscriber = Subscriber(
            make_connection=self._subscriber_connection_factory(client.connection_pool),
            channels=self._channels,
            listeners=self._listeners,
            reconnect_delay=reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
            keepalive_interval=keepalive_interval,
        )
        self._closed = False
        self.publish_errors = 0
        """Failed ``notify_*`` and ``provide_wake_hint`` calls (logged and swallowed)."""
        self.wake_hint_errors = 0
        """``consume_wake_hint`` calls that could not reach Redis (they answered True)."""

    @property
    def reconnects(self) -> int:
        """How many times the subscription came back after a drop (or after Redis was down at start)."""
        return self._subscriber.reconnects

    def _subscriber_connection_factory(
        self, pool: ConnectionPool
    ) -> Callable[[], AbstractConnection]:
        options: dict[str, Any] = dict(pool.connection_kwargs)
        options.update(
            client_name=f"{self.client_name}:sub",
            protocol=2,
            decode_responses=False,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=options.get("socket_connect_timeout") or self._publish_timeout,
            socket_timeout=options.get("socket_timeout") or self._publish_timeout,
        )
        # Server maintenance notifications (redis-py >= 7) need RESP3; the subscriber speaks RESP2.
        options.pop("maint_notifications_pool_handler", None)
        if "maint_notifications_config" in options:
            options["maint_notifications_config"] = None
        connection_class = pool.connection_class

        def make_connection() -> AbstractConnection:
            return connection_class(**options)

        return make_connection

    def _check(self) -> None:
        if self._closed:
            raise NotifyAdapterClosedError()

    async def _publish(self, topic: str, payload: str) -> None:
        self._check()
        try:
            await asyncio.wait_for(
                self._client.publish(self._channels[topic], payload), self._publish_timeout
            )
        except CONNECTION_ERRORS as error:
            self.publish_errors += 1
            logger.warning(
                "queuert notify publish to Redis failed (a hint lost; polling covers it)",
                extra={"queuert_topic": topic, "queuert_error": repr(error)},
            )

    async def _listen(
        self, topic: str, keys: Sequence[str], callback: Callable[[str], None]
    ) -> Unsubscribe:
        self._check()
        listener = Listener(tuple(dict.fromkeys(keys)), callback)
        listeners = self._listeners[topic]
        listeners.add(listener)
        try:
            live = await self._subscriber.ensure(topic, self._listen_timeout)
        except BaseException:
            listeners.remove(listener)  # the caller never gets its unsubscribe function
            raise
        if not live:
            # Redis is unreachable: the listener gets a catch-up call once the subscription is up.
            listener.stale = True

        async def unsubscribe() -> None:
            listeners.remove(listener)

        return unsubscribe

    def _hint_key(self, type_name: str) -> str:
        return f"{self.prefix}:hint:{type_name}"

    async def notify_job_scheduled(self, type_name: str) -> None:
        await self._publish(SCHEDULED, type_name)

    async def listen_job_scheduled(
        self, type_names: Sequence[str], callback: Callable[[str], None]
    ) -> Unsubscribe:
        return await self._listen(SCHEDULED, type_names, callback)

    async def provide_wake_hint(self, type_name: str, count: int) -> None:
        self._check()
        if count <= 0:
            return
        try:
            await asyncio.wait_for(
                self._provide_script(
                    keys=[self._hint_key(type_name)], args=[count, self._wake_hint_ttl_ms]
                ),
                self._publish_timeout,
            )
        except CONNECTION_ERRORS as error:
            self.publish_errors += 1
            logger.warning(
                "queuert wake-hint budget not stored in Redis (extra workers may wake)",
                extra={"queuert_type_name": type_name, "queuert_error": repr(error)},
            )

    async def consume_wake_hint(self, type_name: str) -> bool:
        self._check()
        try:
            claimed = await asyncio.wait_for(
                self._consume_script(keys=[self._hint_key(type_name)]), self._publish_timeout
            )
        except CONNECTION_ERRORS as error:
            self.wake_hint_errors += 1
            logger.warning(
                "queuert wake-hint budget unreadable in Redis; waking up",
                extra={"queuert_type_name": type_name, "queuert_error": repr(error)},
            )
            return True
        return bool(claimed)

    async def notify_chain_closed(self, chain_id: str) -> None:
        await self._publish(CHAIN_CLOSED, chain_id)

    async def listen_chain_closed(self, chain_id: str, callback: Callable[[], None]) -> Unsubscribe:
        return await self._listen(CHAIN_CLOSED, [chain_id], lambda _key: callback())

    async def notify_job_ownership_lost(self, job_id: str) -> None:
        await self._publish(OWNERSHIP_LOST, job_id)

    async def listen_job_ownership_lost(
        self, job_id: str, callback: Callable[[], None]
    ) -> Unsubscribe:
        return await self._listen(OWNERSHIP_LOST, [job_id], lambda _key: callback())

    async def close(self) -> None:
        """Stops the subscriber and closes the connections the adapter opened. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._subscriber.close()
        for listeners in self._listeners.values():
            listeners.clear()
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> RedisNotifyAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
