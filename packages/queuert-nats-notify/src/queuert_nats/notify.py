"""The NATS notify adapter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.api import StorageType
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue
from queuert.errors import ConfigurationError, NotifyAdapterClosedError
from queuert.notify import Unsubscribe

from queuert_nats import _hints
from queuert_nats._listeners import Listener, Listeners

__all__ = ["NatsNotifyAdapter"]

logger = logging.getLogger("queuert.notify.nats")

_PREFIX = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
_BUCKET = re.compile(r"[A-Za-z0-9_\-]+")
SCHEDULED, CHAIN_CLOSED, OWNERSHIP_LOST = "sched", "chainc", "owls"
NATS_ERRORS = (NatsError, OSError, asyncio.TimeoutError)
KV_RETRY_INTERVAL = 5.0


class NatsNotifyAdapter:
    """Notifications over NATS core pub/sub; optional wake-hint budgets in a JetStream KV bucket.

    Give ``servers`` (the adapter owns its connection: it connects on first use, reconnects forever and
    closes it in :meth:`close`) or a ``client`` of your own (never closed by the adapter; see the
    README for wiring its reconnect callbacks to :meth:`on_disconnected` / :meth:`on_reconnected`).

    Subjects are ``{prefix}.sched`` (payload: a job type name), ``{prefix}.chainc`` (a chain id) and
    ``{prefix}.owls`` (a job id). Each is subscribed the first time something listens to it and stays
    subscribed for the adapter's lifetime; local listeners are routed by payload.

    Wake hints need a KV bucket: ``wake_hint_bucket`` is its name (opened on connect, and created with a
    TTL of ``wake_hint_ttl`` if ``create_wake_hint_bucket``) or a ``KeyValue`` you opened. Without one,
    ``provide_wake_hint`` does nothing and ``consume_wake_hint`` always answers True.

    Nothing here raises on a connection problem: failed publishes are logged and counted in
    :attr:`publish_errors`, unreadable budgets answer True (counted in :attr:`wake_hint_errors`), and
    ``listen_*`` returns while NATS is unreachable. Each time the connection comes back, every listener
    that may have missed something gets one catch-up call (per type for job-scheduled listeners).
    """

    def __init__(
        self,
        servers: str | Sequence[str] | None = None,
        *,
        client: Client | None = None,
        subject_prefix: str = "queuert",
        wake_hint_bucket: str | KeyValue | None = None,
        create_wake_hint_bucket: bool = False,
        wake_hint_ttl: float = 60.0,
        publish_timeout: float = 2.0,
        listen_timeout: float = 5.0,
        reconnect_time_wait: float = 1.0,
        ping_interval: int = 20,
        name: str | None = None,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        if (servers is None) == (client is None):
            raise ConfigurationError("pass exactly one of servers= or client=")
        if not _PREFIX.fullmatch(subject_prefix):
            raise ConfigurationError(
                f"invalid NATS subject prefix {subject_prefix!r}: dot-separated tokens of "
                "letters, digits, '_' and '-'"
            )
        if isinstance(wake_hint_bucket, str) and not _BUCKET.fullmatch(wake_hint_bucket):
            raise ConfigurationError(f"invalid KV bucket name {wake_hint_bucket!r}")
        if wake_hint_ttl <= 0 or publish_timeout <= 0 or listen_timeout < 0:
            raise ConfigurationError("wake_hint_ttl and publish_timeout must be positive")
        self.subject_prefix = subject_prefix
        self._owns_client = client is None
        self._nc = client if client is not None else Client()
        self._servers = [servers] if isinstance(servers, str) else list(servers or [])
        self._connect_options: dict[str, Any] = {
            "name": name or f"queuert-notify:{subject_prefix}",
            "reconnect_time_wait": reconnect_time_wait,
            "ping_interval": ping_interval,
            "connect_timeout": max(1, round(publish_timeout)),
            **(connect_options or {}),
        }
        self._publish_timeout = publish_timeout
        self._listen_timeout = listen_timeout
        self._subjects = {
            topic: f"{subject_prefix}.{topic}"
            for topic in (SCHEDULED, CHAIN_CLOSED, OWNERSHIP_LOST)
        }
        self._topics = {subject: topic for topic, subject in self._subjects.items()}
        self._listeners = {topic: Listeners(topic) for topic in self._subjects}
        self._subscriptions: dict[str, Subscription] = {}
        self._confirmed: set[str] = set()
        """The subscribed topics the server is known to have (a flush after their SUB came back):
        a listener returns only once its topic is here, not merely subscribed by a concurrent one."""
        self._wanted: set[str] = set()
        self._subscribe_lock = asyncio.Lock()
        self._kv: KeyValue | None = None
        self._bucket: str | None = None
        if isinstance(wake_hint_bucket, str):
            self._bucket = wake_hint_bucket
        elif wake_hint_bucket is not None:
            self._kv = wake_hint_bucket
        self._create_bucket = create_wake_hint_bucket
        self._wake_hint_ttl = wake_hint_ttl
        self._kv_lock = asyncio.Lock()
        self._kv_retry_at = 0.0
        self._connect_task: asyncio.Task[None] | None = None
        self._attempt_failed = False
        self._changed = asyncio.Event()
        self._closed = False
        self.publish_errors = 0
        """Failed ``notify_*`` and ``provide_wake_hint`` calls (logged and swallowed)."""
        self.wake_hint_errors = 0
        """``consume_wake_hint`` calls that could not read the budget (they answered True)."""
        self.reconnects = 0
        """How many times the connection came back (after a drop, or after NATS was down at start)."""

    @property
    def wake_hint_budgets(self) -> bool:
        """Whether budgets are kept (a KV bucket was given); without, every consume answers True."""
        return self._kv is not None or self._bucket is not None

    # -- connection ---------------------------------------------------------------------------------

    def _signal(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _start(self) -> None:
        if self._owns_client and self._connect_task is None:
            self._connect_task = asyncio.get_running_loop().create_task(
                self._connect(), name="queuert_nats.connect"
            )

    async def _connect(self) -> None:
        try:
            await self._establish()
        except Exception:
            # nats-py retries unreachable servers forever, so this is a configuration problem (a bad
            # URL, say): stay usable without notifications rather than die with an unretrieved error.
            self._attempt_failed = True
            self._signal()
            logger.exception("queuert notify cannot connect to NATS; notifications are off")

    async def _establish(self) -> None:
        await self._nc.connect(
            self._servers,
            error_cb=self._on_error,
            disconnected_cb=self.on_disconnected,
            reconnected_cb=self.on_reconnected,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            **self._connect_options,
        )
        if self._attempt_failed:
            self.reconnects += 1
            logger.info("queuert notify connected to NATS after it was unreachable")
        self._attempt_failed = False
        await self._connection_up()

    async def _on_error(self, error: Exception) -> None:
        if not self._nc.is_connected and not self._attempt_failed and not self._closed:
            logger.warning(
                "queuert notify cannot reach NATS; retrying",
                extra={"queuert_error": repr(error)},
            )
        elif self._nc.is_connected:
            logger.warning("queuert notify NATS error", extra={"queuert_error": repr(error)})
        if not self._nc.is_connected:
            self._attempt_failed = True
        self._signal()

    async def on_disconnected(self) -> None:
        """Marks every listener as possibly behind. nats-py calls it (pass it as ``disconnected_cb``)."""
        if self._closed:
            return
        logger.warning("queuert notify connection to NATS lost; reconnecting")
        self._confirmed.clear()  # the reconnect sends the subscriptions again; flushed once it did
        for listeners in self._listeners.values():
            listeners.mark_stale()
        self._attempt_failed = True
        self._signal()

    async def on_reconnected(self) -> None:
        """Subscribes what is missing, then hands out catch-up calls (pass it as ``reconnected_cb``)."""
        if self._closed:
            return
        self.reconnects += 1
        logger.info(
            "queuert notify connection to NATS is back",
            extra={"queuert_reconnects": self.reconnects},
        )
        self._attempt_failed = False
        await self._connection_up()

    async def _connection_up(self) -> None:
        try:
            await self._restore()
        except Exception:
            # Never let an error escape into nats-py's reconnect loop (it would take it for a failed
            # reconnect); the listeners stay stale and get their catch-up call next time.
            logger.exception("queuert notify failed to restore its NATS subscriptions")
        self._signal()

    async def _restore(self) -> None:
        if self._bucket is not None:
            # Open it afresh: a server restart loses a memory-storage bucket, which is then re-created.
            self._kv, self._kv_retry_at = None, 0.0
        if await self._subscribe_missing():
            for listeners in self._listeners.values():
                listeners.catch_up()
        self._signal()
        await self._open_bucket()

    async def _await_connection(self, timeout: float) -> bool:
        """True once connected. Waits only while a first connection attempt is still in progress."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._nc.is_connected and not self._attempt_failed and not self._closed:
            remaining = deadline - loop.time()
            if remaining <= 0 or not self._owns_client:
                break
            changed = self._changed
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        return self._nc.is_connected

    # -- subscriptions ------------------------------------------------------------------------------

    async def _subscribe_missing(self) -> bool:
        """Subscribes every wanted subject not yet subscribed; True once the server has them all."""
        async with self._subscribe_lock:
            if not self._nc.is_connected:
                return False
            try:
                for topic in sorted(self._wanted - self._subscriptions.keys()):
                    self._subscriptions[topic] = await self._nc.subscribe(
                        self._subjects[topic], cb=self._on_message
                    )
                if self._subscriptions.keys() - self._confirmed:
                    # Twice: nats-py (2.16) writes a flush's PING straight to the socket, ahead of the SUB
                    # still waiting in its buffer, so the first PONG does not prove the server has the
                    # subscription. The second PING leaves after the SUB (the buffer is written while
                    # the first round trip is under way), so its PONG does.
                    await self._nc.flush(timeout=self._listen_timeout)  # type: ignore[arg-type]
                    await self._nc.flush(timeout=self._listen_timeout)  # type: ignore[arg-type]
                    self._confirmed.update(self._subscriptions)
            except NATS_ERRORS as error:
                logger.warning(
                    "queuert notify could not subscribe on NATS; will retry on reconnect",
                    extra={"queuert_error": repr(error)},
                )
                return False
            return self._nc.is_connected

    async def _on_message(self, message: Msg) -> None:
        topic = self._topics.get(message.subject)
        if topic is not None:
            self._listeners[topic].dispatch(message.data.decode("utf-8", "replace"))

    async def _listen(
        self, topic: str, keys: Sequence[str], callback: Callable[[str], None]
    ) -> Unsubscribe:
        self._check()
        self._start()
        listener = Listener(tuple(dict.fromkeys(keys)), callback)
        listeners = self._listeners[topic]
        listeners.add(listener)
        try:
            self._wanted.add(topic)
            live = await self._await_connection(self._listen_timeout)
            if live and topic not in self._confirmed:
                live = await self._subscribe_missing()
        except BaseException:
            listeners.remove(listener)  # the caller never gets its unsubscribe function
            raise
        if not live:
            # NATS is unreachable: the listener gets a catch-up call once the connection is back.
            listener.stale = True

        async def unsubscribe() -> None:
            listeners.remove(listener)

        return unsubscribe

    # -- publishing ---------------------------------------------------------------------------------

    def _check(self) -> None:
        if self._closed:
            raise NotifyAdapterClosedError()

    def _publish_failed(self, topic: str, error: BaseException | str) -> None:
        self.publish_errors += 1
        logger.warning(
            "queuert notify publish to NATS failed (a hint lost; polling covers it)",
            extra={"queuert_topic": topic, "queuert_error": repr(error)},
        )

    async def _publish(self, topic: str, payload: str) -> None:
        self._check()
        self._start()
        if not await self._await_connection(self._publish_timeout):
            self._publish_failed(topic, "not connected")
            return
        try:
            await self._nc.publish(self._subjects[topic], payload.encode())
            await self._nc.flush(timeout=self._publish_timeout)  # type: ignore[arg-type]
        except NATS_ERRORS as error:
            self._publish_failed(topic, error)

    # -- wake hints ---------------------------------------------------------------------------------

    async def _open_bucket(self) -> KeyValue | None:
        if self._kv is not None or self._bucket is None or not self._nc.is_connected:
            return self._kv
        loop = asyncio.get_running_loop()
        if loop.time() < self._kv_retry_at:
            return None
        async with self._kv_lock:
            opened = self._opened_bucket()  # another task may have opened it while this one waited
            if opened is not None:
                return opened
            js = self._nc.jetstream(timeout=self._publish_timeout)
            try:
                try:
                    self._kv = await js.key_value(self._bucket)
                except BucketNotFoundError:
                    if not self._create_bucket:
                        raise
                    self._kv = await js.create_key_value(
                        bucket=self._bucket,
                        history=1,
                        ttl=self._wake_hint_ttl,
                        storage=StorageType.MEMORY,
                        description="queuert wake-hint budgets",
                    )
            except NATS_ERRORS as error:
                self._kv_retry_at = loop.time() + KV_RETRY_INTERVAL
                logger.warning(
                    "queuert notify cannot open the wake-hint bucket; waking every listener meanwhile",
                    extra={"queuert_bucket": self._bucket, "queuert_error": repr(error)},
                )
        return self._kv

    def _forget_bucket(self) -> None:
        """After a failure, a bucket the adapter opened by name is opened (or created) again next time."""
        if self._bucket is not None:
            self._kv = None

    def _opened_bucket(self) -> KeyValue | None:
        return self._kv

    async def _hint_store(self) -> KeyValue | None:
        if self._kv is None and self._bucket is not None:
            self._start()
            if await self._await_connection(self._publish_timeout):
                await self._open_bucket()
        return self._kv

    async def provide_wake_hint(self, type_name: str, count: int) -> None:
        self._check()
        if count <= 0 or not self.wake_hint_budgets:
            return
        kv = await self._hint_store()
        try:
            if kv is None:
                raise ConnectionError("the wake-hint bucket is not available")
            if await _hints.provide(kv, _hints.hint_key(self.subject_prefix, type_name), count):
                return
            error: BaseException | str = "lost every compare-and-set race"
        except (*NATS_ERRORS, ConnectionError) as failure:
            error = failure
            self._forget_bucket()
        self.publish_errors += 1
        logger.warning(
            "queuert wake-hint budget not stored in NATS (extra workers may wake)",
            extra={"queuert_type_name": type_name, "queuert_error": repr(error)},
        )

    async def consume_wake_hint(self, type_name: str) -> bool:
        self._check()
        if not self.wake_hint_budgets:
            return True
        kv = await self._hint_store()
        try:
            if kv is None:
                raise ConnectionError("the wake-hint bucket is not available")
            return await _hints.consume(kv, _hints.hint_key(self.subject_prefix, type_name))
        except (*NATS_ERRORS, ConnectionError) as error:
            self._forget_bucket()
            self.wake_hint_errors += 1
            logger.warning(
                "queuert wake-hint budget unreadable in NATS; waking up",
                extra={"queuert_type_name": type_name, "queuert_error": repr(error)},
            )
            return True

    # -- the contract -------------------------------------------------------------------------------

    async def notify_job_scheduled(self, type_name: str) -> None:
        await self._publish(SCHEDULED, type_name)

    async def listen_job_scheduled(
        self, type_names: Sequence[str], callback: Callable[[str], None]
    ) -> Unsubscribe:
        return await self._listen(SCHEDULED, type_names, callback)

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
        """Unsubscribes, and closes the connection if the adapter opened it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._signal()
        task, self._connect_task = self._connect_task, None
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, *NATS_ERRORS):
                await task
        for listeners in self._listeners.values():
            listeners.clear()
        subscriptions, self._subscriptions = self._subscriptions, {}
        self._confirmed.clear()
        if self._owns_client:
            if task is not None:  # else connect() was never called and there is nothing to close
                with contextlib.suppress(*NATS_ERRORS):
                    await self._nc.close()
        else:
            for subscription in subscriptions.values():
                with contextlib.suppress(*NATS_ERRORS):
                    await subscription.unsubscribe()

    async def __aenter__(self) -> NatsNotifyAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
