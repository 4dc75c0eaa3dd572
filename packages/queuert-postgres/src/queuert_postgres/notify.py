"""``PgNotifyAdapter``: :class:`queuert.notify.NotifyAdapter` on PostgreSQL LISTEN/NOTIFY (asyncpg).

* Channels ``{prefix}_sched`` (payload: job type name), ``{prefix}_chainc`` (chain id) and
  ``{prefix}_owls`` (job id); ``prefix`` defaults to ``queuert``.
* Publishing inside the transaction: with a :class:`~queuert_postgres.PgStateAdapter` on the same
  database, the notifications of every transaction the client or the worker opens are sent in that
  transaction, by one ``SELECT pg_notify(...) FROM unnest(...)`` just before the COMMIT. PostgreSQL
  delivers them when the transaction commits and never if it rolls back, so they cost no transaction
  of their own. A chain started without a transaction sends its wake-ups in its own INSERT
  statement, and a worker's group commit its chain-closed messages in its own UPDATE statement: one
  autocommit statement each.
* Otherwise (a transaction of the caller's, work committed without one, another state adapter)
  publishing runs ``SELECT pg_notify(channel, payload)`` on a pooled connection after the commit. A
  failed publish is logged and swallowed: notifications are hints, polling covers a lost one.
* Listening uses ONE dedicated connection per adapter that LISTENs to the job-scheduled and
  ownership-lost channels when it connects, and to the chain-closed channel when the first
  ``listen_chain_closed`` comes (a worker that never waits for a chain is not woken by every chain
  that closes); each LISTEN once for the adapter's lifetime. Every local callback is multiplexed on
  it by payload. Subscribing and unsubscribing only touch in-process maps (no LISTEN/UNLISTEN round
  trips).
* When that connection drops (server restart, ``pg_terminate_backend``, network), a supervisor task
  reconnects with exponential backoff and jitter, LISTENs again, then calls every job-scheduled listener
  once per subscribed type and every chain/ownership listener once, so listeners re-check whatever they
  may have missed. A periodic ping detects silently dead connections.
* No wake-hint counter: ``provide_wake_hint`` does nothing and ``consume_wake_hint`` returns True (every
  idle worker wakes; ``SKIP LOCKED`` sorts out who gets the jobs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from queuert.errors import NotifyAdapterClosedError
from queuert.notify import Notifications, NotifyInTransaction, Unsubscribe

from queuert_postgres._notifying import PgPublisher
from queuert_postgres._provider import Sql
from queuert_postgres._schema import validate_identifier
from queuert_postgres.state import PgStateAdapter

__all__ = ["PgNotifyAdapter"]

logger = logging.getLogger("queuert.postgres.notify")

_MAX_PAYLOAD = 7999

_NOTIFY_MANY = "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS n(c, p)"

_DATABASE = (
    "SELECT current_database()::text, extract(epoch FROM pg_postmaster_start_time())::text,"
    " current_setting('port')"
)
"""Which database of which server a connection is on (LISTEN/NOTIFY work within one database)."""


async def _no_reset(conn: Any) -> None:
    """The publishing pool's connections only run ``pg_notify``: nothing to reset on release (the
    default reset is a statement, and a transaction, per publish)."""


class _Routes:
    """Callbacks keyed by routing key (type name, chain id or job id)."""

    def __init__(self) -> None:
        self.by_key: dict[str, dict[int, Callable[[str], None]]] = {}

    def add(self, token: int, keys: Sequence[str], callback: Callable[[str], None]) -> None:
        for key in keys:
            self.by_key.setdefault(key, {})[token] = callback

    def remove(self, token: int, keys: Sequence[str]) -> None:
        for key in keys:
            bucket = self.by_key.get(key)
            if bucket is not None:
                bucket.pop(token, None)
                if not bucket:
                    del self.by_key[key]

    def dispatch(self, key: str) -> None:
        for callback in list(self.by_key.get(key, {}).values()):
            _call(callback, key)

    def catch_up(self) -> None:
        """Every callback once per key it listens to."""
        for key, bucket in list(self.by_key.items()):
            for callback in list(bucket.values()):
                _call(callback, key)


def _call(callback: Callable[[str], None], key: str) -> None:
    try:
        callback(key)
    except Exception:
        logger.exception("notify listener failed", extra={"queuert_key": key})


def channels_of(channel_prefix: str) -> dict[str, str]:
    """The channel of each kind of message (``sched``, ``chainc``, ``owls``) for a prefix."""
    return {
        "sched": f"{channel_prefix}_sched",
        "chainc": f"{channel_prefix}_chainc",
        "owls": f"{channel_prefix}_owls",
    }


NOTIFY_MANY = _NOTIFY_MANY
"""``SELECT pg_notify(...)`` of channels ``$1`` and payloads ``$2`` (text arrays)."""


def notify_messages(
    channels: dict[str, str], notifications: Notifications
) -> tuple[list[str], list[str]]:
    """Channels and payloads of ``notifications``, in the order the one-by-one calls would send
    them (a payload too long for ``NOTIFY`` is logged and dropped)."""
    ready = notifications.ready
    closed = notifications.closed_chains
    if not notifications.scheduled and not notifications.ownership_lost:
        if len(ready) == 1 and not closed:
            # jobs of one type became ready (a chain start): its job-scheduled message alone
            (key,) = ready
            if len(key) <= _MAX_PAYLOAD // 4:
                return [channels["sched"]], [key]
        elif not ready and len(closed) == 1:
            # one chain closed, releasing nothing (a job of a group commit): its message alone
            (key,) = closed
            if len(key) <= _MAX_PAYLOAD // 4:
                return [channels["chainc"]], [key]
    names: list[str] = []
    payloads: list[str] = []
    for kind, keys in (
        ("sched", notifications.scheduled_types()),
        ("chainc", notifications.closed_chains),
        ("owls", notifications.ownership_lost),
    ):
        channel = channels[kind]
        for key in keys:
            if len(key) > _MAX_PAYLOAD // 4 and len(key.encode()) > _MAX_PAYLOAD:
                logger.error(
                    "notification payload too long for NOTIFY; dropped",
                    extra={"queuert_channel": channel, "queuert_payload_size": len(key)},
                )
                continue
            names.append(channel)
            payloads.append(key)
    return names, payloads


class PgNotifyAdapter:
    """LISTEN/NOTIFY notifications for queuert over asyncpg.

    ``dsn`` is used for the dedicated listening connection and, unless ``pool`` (an asyncpg pool, e.g.
    the state adapter's ``provider.pool``) is given, for a small publishing pool of its own.
    """

    def __init__(
        self,
        dsn: str,
        *,
        channel_prefix: str = "queuert",
        pool: Any = None,
        reconnect_initial_delay: float = 0.1,
        reconnect_max_delay: float = 10.0,
        ping_interval: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        validate_identifier("channel prefix", channel_prefix)
        self._dsn = dsn
        self.channel_prefix = channel_prefix
        self.channels = channels_of(channel_prefix)
        self._routes = {name: _Routes() for name in self.channels}
        self._by_channel = {channel: self._routes[name] for name, channel in self.channels.items()}
        self._pool = pool
        self._owns_pool = pool is None
        self._pool_lock = asyncio.Lock()
        self._initial_delay = reconnect_initial_delay
        self._max_delay = reconnect_max_delay
        self._ping_interval = ping_interval
        self._connect_timeout = connect_timeout
        self._conn: Any = None
        self._wanted = {"sched", "owls"}
        """The channels (by kind) the listening connection LISTENs to: chain-closed once wanted."""
        self._ready = set(self._wanted)
        """The kinds a subscriber may count on: LISTENed on the live connection, or left to the
        reconnect (which LISTENs and catches up). A kind is wanted before it is ready: a subscriber
        that finds it wanted but not ready waits for the LISTEN under way."""
        self._listen_lock = asyncio.Lock()
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._next_token = 0
        self._closed = False
        self.reconnects = 0
        """How many times the listening connection was re-established (diagnostics)."""

    # -- state --------------------------------------------------------------------------------------

    @property
    def listener_pid(self) -> int | None:
        """Backend pid of the listening connection while it is up (diagnostics and tests)."""
        conn = self._conn
        if conn is None or conn.is_closed():
            return None
        return int(conn.get_server_pid())

    def _check_open(self) -> None:
        if self._closed:
            raise NotifyAdapterClosedError()

    # -- publishing ---------------------------------------------------------------------------------

    async def _publisher(self) -> Any:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    import asyncpg

                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=0,
                        max_size=2,
                        timeout=self._connect_timeout,
                        reset=_no_reset,
                    )
        return self._pool

    async def _publish(self, kind: str, payload: str) -> None:
        self._check_open()
        channel = self.channels[kind]
        if len(payload.encode()) > _MAX_PAYLOAD:
            logger.error(
                "notification payload too long for NOTIFY; dropped",
                extra={"queuert_channel": channel, "queuert_payload_size": len(payload)},
            )
            return
        try:
            pool = await self._publisher()
            await pool.execute("SELECT pg_notify($1::text, $2::text)", channel, payload)
        except Exception as error:
            if self._closed:
                raise NotifyAdapterClosedError() from error
            logger.warning(
                "publishing a notification failed (polling will catch up)",
                extra={"queuert_channel": channel, "queuert_error": repr(error)},
            )

    async def in_transactions_of(self, state: object, tx: Any = None) -> NotifyInTransaction | None:
        """Publishing inside the transactions of ``state`` when it is a
        :class:`~queuert_postgres.PgStateAdapter` on this adapter's database (checked once, by
        asking both sides which database and server they are on: the state side through ``tx``
        when given); ``None`` otherwise."""
        if self._closed or not isinstance(state, PgStateAdapter):
            return None
        check = Sql(_DATABASE)
        try:
            pool = await self._publisher()
            mine = tuple(await pool.fetchrow(check.text))
            theirs = tuple((await state.provider.fetch(check, [], tx))[0])
        except Exception as error:
            logger.warning(
                "could not compare the notify and state databases; publishing after commit",
                extra={"queuert_error": repr(error)},
            )
            return None
        if mine != theirs:
            logger.info(
                "the state adapter is on another database; publishing after commit",
                extra={"queuert_database": mine[0], "queuert_state_database": theirs[0]},
            )
            return None
        return PgPublisher(state, self._messages, state.provider.fetch, Sql(_NOTIFY_MANY))

    def _messages(self, notifications: Notifications) -> tuple[list[str], list[str]]:
        return notify_messages(self.channels, notifications)

    async def notify_many(self, notifications: Notifications) -> None:
        """Every message in one ``SELECT pg_notify(...) FROM unnest(...)`` on the publishing pool."""
        self._check_open()
        channels, payloads = self._messages(notifications)
        if not channels:
            return
        try:
            pool = await self._publisher()
            await pool.execute(_NOTIFY_MANY, channels, payloads)
        except Exception as error:
            if self._closed:
                raise NotifyAdapterClosedError() from error
            logger.warning(
                "publishing notifications failed (polling will catch up)",
                extra={"queuert_messages": len(channels), "queuert_error": repr(error)},
            )

    async def notify_job_scheduled(self, type_name: str) -> None:
        await self._publish("sched", type_name)

    async def notify_chain_closed(self, chain_id: str) -> None:
        await self._publish("chainc", chain_id)

    async def notify_job_ownership_lost(self, job_id: str) -> None:
        await self._publish("owls", job_id)

    async def provide_wake_hint(self, type_name: str, count: int) -> None:
        """No counter on PostgreSQL: nothing to do."""
        self._check_open()

    async def consume_wake_hint(self, type_name: str) -> bool:
        """No counter on PostgreSQL: every listener may wake."""
        self._check_open()
        return True

    # -- listening ----------------------------------------------------------------------------------

    async def listen_job_scheduled(
        self, type_names: Sequence[str], callback: Callable[[str], None]
    ) -> Unsubscribe:
        return await self._subscribe("sched", list(dict.fromkeys(type_names)), callback)

    async def listen_chain_closed(self, chain_id: str, callback: Callable[[], None]) -> Unsubscribe:
        return await self._subscribe("chainc", [chain_id], lambda _key: callback())

    async def listen_job_ownership_lost(
        self, job_id: str, callback: Callable[[], None]
    ) -> Unsubscribe:
        return await self._subscribe("owls", [job_id], lambda _key: callback())

    async def _subscribe(
        self, kind: str, keys: list[str], callback: Callable[[str], None]
    ) -> Unsubscribe:
        self._check_open()
        await self._ensure_listening()
        self._check_open()
        if kind not in self._ready:
            await self._want(kind)
        self._next_token += 1
        token = self._next_token
        routes = self._routes[kind]
        routes.add(token, keys, callback)
        removed = False

        async def unsubscribe() -> None:
            nonlocal removed
            if not removed:
                removed = True
                routes.remove(token, keys)

        return unsubscribe

    async def _ensure_listening(self) -> None:
        """Start the supervisor on first use and wait for the first connection (errors propagate, and
        the next subscriber tries again). Later subscribers do not wait for a reconnect: the catch-up
        call after it covers them."""
        if self._supervisor is not None and not self._supervisor.done():
            if self._first is not None:
                await asyncio.shield(self._first)
            return
        loop = asyncio.get_running_loop()
        self._first = loop.create_future()
        self._supervisor = asyncio.create_task(self._supervise(), name="pg-notify-listener")
        await asyncio.shield(self._first)

    async def _want(self, kind: str) -> None:
        """LISTEN to ``kind``'s channel from now on (on the live connection, and on every one after
        a reconnect), returning once the server has the LISTEN: the lock, held until then, keeps
        concurrent subscribers of the same kind waiting for it. If the connection fails meanwhile,
        or the LISTEN does, the reconnect LISTENs and catches up."""
        async with self._listen_lock:
            if kind in self._ready:
                return
            self._wanted.add(kind)
            conn = self._conn
            try:
                if conn is not None and not conn.is_closed():
                    await conn.add_listener(self.channels[kind], self._on_notification)
            except Exception as error:
                logger.info(
                    "LISTEN failed; reconnecting to listen",
                    extra={"queuert_channel": self.channels[kind], "queuert_error": repr(error)},
                )
                self._lost.set()
            self._ready.add(kind)

    async def _connect(self) -> Any:
        import asyncpg

        conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
        try:
            lost = self._lost
            conn.add_termination_listener(lambda _conn: lost.set())
            async with self._listen_lock:
                for kind in self._wanted:
                    await conn.add_listener(self.channels[kind], self._on_notification)
                self._conn = conn  # a channel wanted from now on is LISTENed on this connection
        except BaseException:
            conn.terminate()
            raise
        return conn

    def _on_notification(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        routes = self._by_channel.get(channel)
        if routes is not None:
            routes.dispatch(payload)

    async def _supervise(self) -> None:
        delay = self._initial_delay
        connected_before = False
        first = self._first
        while not self._closed:
            self._lost = asyncio.Event()
            try:
                conn = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if first is not None and not first.done():
                    # Nobody has been told the subscription is live yet: let the caller see why.
                    first.set_exception(error)
                    self._supervisor = None
                    return
                logger.warning(
                    "LISTEN connection failed; retrying",
                    extra={"queuert_error": repr(error), "queuert_retry_in": delay},
                )
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._max_delay)
                continue
            self._conn = conn
            delay = self._initial_delay
            if first is not None and not first.done():
                first.set_result(None)
            if connected_before:
                self.reconnects += 1
                logger.info("LISTEN connection re-established; catching up listeners")
                for routes in self._routes.values():
                    routes.catch_up()
            connected_before = True
            try:
                await self._watch(conn)
            finally:
                self._conn = None
                with contextlib.suppress(Exception):
                    conn.terminate()
            if not self._closed:
                logger.warning("LISTEN connection lost; reconnecting")

    async def _watch(self, conn: Any) -> None:
        """Return when ``conn`` is lost (termination callback or a failed ping)."""
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), self._ping_interval)
                return
            except asyncio.TimeoutError:
                pass
            try:
                # Under the lock: a LISTEN and the ping on one connection at once would fail.
                async with self._listen_lock:
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), self._connect_timeout)
            except asyncio.CancelledError:
                raise
            except Exception:
                return

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._first is not None and not self._first.done():
            self._first.set_exception(NotifyAdapterClosedError())
            with contextlib.suppress(BaseException):
                self._first.exception()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)
            if not conn.is_closed():
                conn.terminate()
        for routes in self._routes.values():
            routes.by_key.clear()
        if self._owns_pool and self._pool is not None:
            pool, self._pool = self._pool, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), 5.0)

    async def __aenter__(self) -> PgNotifyAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
