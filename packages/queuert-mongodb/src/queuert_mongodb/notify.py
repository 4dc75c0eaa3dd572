"""``MongoNotifyAdapter``: :class:`queuert.notify.NotifyAdapter` on MongoDB change streams.

* A message is a document inserted into ``{prefix}notify``: ``s`` (job types with jobs scheduled),
  ``c`` (closed chains) and ``o`` (jobs whose ownership was lost), each a list, and ``at``, the
  server's time (a TTL index removes messages after ten minutes). Everything one commit announces is
  one document.
* Listening is one change stream per adapter on the inserts of that collection (see
  :mod:`queuert_mongodb._change_feed`), opened when the first listener comes; every local callback is
  routed from it by key. A lost stream is reopened after its last resume token, so messages written
  while it was down are still delivered; then, as the notify contract asks, every listener gets one
  catch-up call to re-check state.
* Wake-hint budgets are documents of ``{prefix}wake_hints`` (``t`` type, ``n`` units left, ``exp``
  the server's time plus ``wake_hint_ttl``): providing inserts one (so publishers never contend for
  a counter), consuming decrements one that has not expired in a single ``find_one_and_update``; a
  TTL index removes them once expired.
* Publishing inside the transaction: with a :class:`~queuert_mongodb.MongoStateAdapter` on the same
  ``AsyncMongoClient``, the messages of every transaction queuert commits are inserted in that
  transaction, so the change stream sees them if and when it commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pymongo
from bson import ObjectId
from bson.codec_options import CodecOptions
from pymongo import UpdateOne
from pymongo.errors import PyMongoError
from queuert.errors import ConfigurationError, NotifyAdapterClosedError
from queuert.listeners import Listener, Listeners
from queuert.notify import Notifications, NotifyInTransaction, Unsubscribe

from queuert_mongodb._change_feed import ChangeFeed, unreachable
from queuert_mongodb._names import Names
from queuert_mongodb._timeouts import with_default_timeouts
from queuert_mongodb.errors import StandaloneServerError
from queuert_mongodb.state import MongoStateAdapter

__all__ = ["MongoNotifyAdapter"]

logger = logging.getLogger("queuert.mongodb.notify")

SCHEDULED, CHAIN_CLOSED, OWNERSHIP_LOST = "s", "c", "o"
_TOPICS = {
    SCHEDULED: "job_scheduled",
    CHAIN_CLOSED: "chain_closed",
    OWNERSHIP_LOST: "ownership_lost",
}
_KEEP_SECONDS = 600
"""Messages are removed by a TTL index this long after they were written."""
_CODEC: CodecOptions[Any] = CodecOptions(tz_aware=True)


class MongoNotifyAdapter:
    """Notifications over a change stream of ``{collection_prefix}notify`` in ``database``.

    ``client`` is a ``pymongo.AsyncMongoClient`` (the state adapter's own, to publish inside its
    transactions); :meth:`connect` makes one the adapter owns and closes. Change streams need a replica
    set (one node is enough) or a sharded cluster, as queuert's transactions do.

    Nothing here raises on a connection problem: ``notify_*`` and ``provide_wake_hint`` log and count
    failures in :attr:`publish_errors`, ``consume_wake_hint`` answers True and counts them in
    :attr:`wake_hint_errors`, ``listen_*`` returns even when the server is down (its listener gets a
    catch-up call once the stream is up). Every call is bounded by ``publish_timeout``; a change
    stream read waits at most ``max_await`` seconds for messages on the server.
    """

    def __init__(
        self,
        client: Any,
        *,
        database: str = "queuert",
        collection_prefix: str = "queuert_",
        owns_client: bool = False,
        wake_hint_ttl: float = 60.0,
        publish_timeout: float = 2.0,
        max_await: float = 1.0,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 10.0,
    ) -> None:
        self.names = Names(database, collection_prefix)
        if wake_hint_ttl <= 0:
            raise ConfigurationError("wake_hint_ttl must be positive")
        if publish_timeout <= 0 or max_await <= 0:
            raise ConfigurationError("publish_timeout and max_await must be positive")
        self.client = client
        self._owns_client = owns_client
        db = client.get_database(database, codec_options=_CODEC)
        self._messages = db.get_collection(self.names.notify)
        self._budgets = db.get_collection(self.names.wake_hints)
        self._wake_hint_ttl_ms = int(wake_hint_ttl * 1000)
        self._publish_timeout = publish_timeout
        self._listeners = {topic: Listeners(name, logger) for topic, name in _TOPICS.items()}
        self._feed = ChangeFeed(
            self._messages,
            on_message=self._dispatch,
            on_down=self._mark_stale,
            on_up=self._catch_up,
            prepare=self._prepare,
            open_timeout=publish_timeout,
            max_await=max_await,
            reconnect_delay=reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
        )
        self._prepared = False
        self._closed = False
        self.publish_errors = 0
        """Failed ``notify_*`` and ``provide_wake_hint`` calls (logged and swallowed)."""
        self.wake_hint_errors = 0
        """``consume_wake_hint`` calls that could not read the budget (they answered True)."""

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        database: str = "queuert",
        collection_prefix: str = "queuert_",
        wake_hint_ttl: float = 60.0,
        publish_timeout: float = 2.0,
        max_await: float = 1.0,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 10.0,
        **client_options: Any,
    ) -> MongoNotifyAdapter:
        """An adapter over a new ``AsyncMongoClient(url, **client_options)`` that it closes. (It
        cannot publish inside the transactions of a state adapter on another client.) The client
        gets the time limits of :meth:`MongoStateAdapter.connect
        <queuert_mongodb.MongoStateAdapter.connect>` unless the URL or ``client_options`` set
        them: its calls are bounded by ``publish_timeout`` anyway, and so is closing it (the
        server's answer to ``endSessions``)."""
        Names(database, collection_prefix)
        from pymongo import AsyncMongoClient

        return cls(
            AsyncMongoClient(url, **with_default_timeouts(url, client_options)),
            database=database,
            collection_prefix=collection_prefix,
            owns_client=True,
            wake_hint_ttl=wake_hint_ttl,
            publish_timeout=publish_timeout,
            max_await=max_await,
            reconnect_delay=reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
        )

    @property
    def reconnects(self) -> int:
        """How many times the change stream came back after a drop (or up, late)."""
        return self._feed.reconnects

    @property
    def listening_cursor_id(self) -> int | None:
        """The server's id of the change stream's cursor while it is live (diagnostics, tests)."""
        return self._feed.cursor_id

    def _check_open(self) -> None:
        if self._closed:
            raise NotifyAdapterClosedError()

    async def migrate(self) -> None:
        """Create the adapter's collections and indexes (idempotent; the first listener does it
        too). Call it once per deployment, next to the state adapter's ``migrate()``, so that
        publishing inside transactions works from the first one: a collection created while a
        transaction runs cannot be written in that transaction."""
        self._check_open()
        with pymongo.timeout(self._publish_timeout):
            await self._prepare()

    async def _prepare(self) -> bool:
        """Create the TTL and lookup indexes (and so the collections), once per adapter; True when
        the collections existed already."""
        if self._prepared:
            return True
        names = [self.names.notify, self.names.wake_hints]
        found = await self._messages.database.list_collection_names(filter={"name": {"$in": names}})
        await self._messages.create_index("at", expireAfterSeconds=_KEEP_SECONDS)
        await self._budgets.create_index("exp", expireAfterSeconds=0)
        await self._budgets.create_index([("t", 1), ("exp", 1)])
        self._prepared = True
        return set(found) == set(names)

    # -- publishing ---------------------------------------------------------------------------------

    async def _write(self, message: _Message, session: Any = None) -> None:
        """The budgets first (a worker woken by the message finds them), then the message."""
        budgets = [
            UpdateOne(
                {"_id": ObjectId()},
                [
                    {
                        "$set": {
                            "t": {"$literal": type_name},
                            "n": count,
                            "exp": {"$add": ["$$NOW", self._wake_hint_ttl_ms]},
                        }
                    }
                ],
                upsert=True,
            )
            for type_name, count in sorted(message.budgets.items())
            if count > 0
        ]
        if budgets:
            await self._budgets.bulk_write(budgets, ordered=False, session=session)
        fields: dict[str, Any] = {
            topic: {"$literal": list(keys)} for topic, keys in message.keys.items() if keys
        }
        if fields:
            fields["at"] = "$$NOW"
            await self._messages.update_one(
                {"_id": ObjectId()}, [{"$set": fields}], upsert=True, session=session
            )

    async def _send(self, message: _Message, what: str) -> None:
        self._check_open()
        try:
            with pymongo.timeout(self._publish_timeout):
                await self._write(message)
        except PyMongoError as error:
            if self._closed:
                raise NotifyAdapterClosedError() from error
            self.publish_errors += 1
            logger.warning(
                "publishing to MongoDB failed (a hint lost; polling covers it)",
                extra={"queuert_message": what, "queuert_error": repr(error)},
            )

    async def notify_many(self, notifications: Notifications) -> None:
        """Everything one commit announces: the budgets in one write, the message in another."""
        await self._send(_Message.of(notifications), "many")

    async def notify_job_scheduled(self, type_name: str) -> None:
        await self._send(_Message({}, {SCHEDULED: [type_name]}), "job_scheduled")

    async def notify_chain_closed(self, chain_id: str) -> None:
        await self._send(_Message({}, {CHAIN_CLOSED: [chain_id]}), "chain_closed")

    async def notify_job_ownership_lost(self, job_id: str) -> None:
        await self._send(_Message({}, {OWNERSHIP_LOST: [job_id]}), "ownership_lost")

    async def provide_wake_hint(self, type_name: str, count: int) -> None:
        self._check_open()
        if count > 0:
            await self._send(_Message({type_name: count}, {}), "wake_hint")

    async def consume_wake_hint(self, type_name: str) -> bool:
        """Takes one unit of an unexpired budget of ``type_name``: True when
        one was left or no budget exists, False when every such budget is used up."""
        self._check_open()
        # compared as milliseconds: SecantusDB (the test server) gets date comparisons with $$NOW wrong
        fresh = {"$expr": {"$gt": [{"$toLong": "$exp"}, {"$toLong": "$$NOW"}]}}
        try:
            with pymongo.timeout(self._publish_timeout):
                taken = await self._budgets.find_one_and_update(
                    {"t": type_name, "n": {"$gt": 0}, **fresh},
                    {"$inc": {"n": -1}},
                    projection={"_id": 1},
                )
                if taken is not None:
                    return True
                spent = await self._budgets.find_one({"t": type_name, **fresh}, {"_id": 1})
        except PyMongoError as error:
            if self._closed:
                raise NotifyAdapterClosedError() from error
            self.wake_hint_errors += 1
            logger.warning(
                "wake-hint budget unreadable in MongoDB; waking up",
                extra={"queuert_type_name": type_name, "queuert_error": repr(error)},
            )
            return True
        return spent is None

    async def in_transactions_of(self, state: object, tx: Any = None) -> NotifyInTransaction | None:
        """Publishing inside the transactions of ``state`` when it is a
        :class:`~queuert_mongodb.MongoStateAdapter` on this adapter's client (the session of its
        transaction belongs to that client); ``None`` otherwise."""
        if (
            self._closed
            or not isinstance(state, MongoStateAdapter)
            or state.client is not self.client
        ):
            return None
        try:
            with pymongo.timeout(self._publish_timeout):
                existed = await self._prepare()
        except PyMongoError as error:
            logger.warning(
                "could not prepare the notify collections; publishing after commit",
                extra={"queuert_error": repr(error)},
            )
            return None
        if not existed:
            # Created just now, maybe while ``tx`` runs: it could not write them. This client
            # publishes after the commit; the next ones publish inside their transactions.
            logger.info(
                "notify collections created; call migrate() to publish inside transactions",
                extra={"queuert_collection": self.names.notify},
            )
            return None
        sessions = state.sessions
        write = self._write

        async def publish(tx: Any, notifications: Notifications) -> None:
            await sessions.run(tx, lambda session: write(_Message.of(notifications), session))

        return publish

    # -- listening ----------------------------------------------------------------------------------

    async def listen_job_scheduled(
        self, type_names: Sequence[str], callback: Callable[[str], None]
    ) -> Unsubscribe:
        return await self._listen(SCHEDULED, type_names, callback)

    async def listen_chain_closed(self, chain_id: str, callback: Callable[[], None]) -> Unsubscribe:
        return await self._listen(CHAIN_CLOSED, [chain_id], lambda _key: callback())

    async def listen_job_ownership_lost(
        self, job_id: str, callback: Callable[[], None]
    ) -> Unsubscribe:
        return await self._listen(OWNERSHIP_LOST, [job_id], lambda _key: callback())

    async def _listen(
        self, topic: str, keys: Sequence[str], callback: Callable[[str], None]
    ) -> Unsubscribe:
        self._check_open()
        listener = Listener(tuple(dict.fromkeys(keys)), callback)
        listeners = self._listeners[topic]
        listeners.add(listener)
        try:
            live = await self._feed.start()
        except BaseException as error:
            listeners.remove(listener)  # the caller never gets its unsubscribe function
            if isinstance(error, PyMongoError) and not unreachable(error):
                await self._refuse_standalone(error)
            if self._closed:
                raise NotifyAdapterClosedError() from error
            raise
        if not live:
            listener.stale = True  # the server is unreachable: a catch-up call once it is up

        async def unsubscribe() -> None:
            listeners.remove(listener)

        return unsubscribe

    async def _refuse_standalone(self, error: PyMongoError) -> None:
        """A standalone server has no change streams: say so, with the fix."""
        try:
            with pymongo.timeout(self._publish_timeout):
                hello = await self.client.admin.command("hello")
        except PyMongoError:
            return
        if "setName" not in hello and hello.get("msg") != "isdbgrid":
            host = hello.get("me") or ",".join(f"{h}:{p}" for h, p in self.client.nodes) or "?"
            raise StandaloneServerError(str(host)) from error

    def _dispatch(self, message: Mapping[str, Any]) -> None:
        if self._closed:
            return
        for topic, listeners in self._listeners.items():
            keys = message.get(topic)
            if isinstance(keys, list):
                for key in keys:
                    if isinstance(key, str):
                        listeners.dispatch(key)

    def _mark_stale(self) -> None:
        for listeners in self._listeners.values():
            listeners.mark_stale()

    def _catch_up(self) -> None:
        if self._closed:
            return
        for listeners in self._listeners.values():
            listeners.catch_up()

    # -- lifecycle ----------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stops the change stream and closes the client when the adapter owns it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for listeners in self._listeners.values():
            listeners.clear()
        await self._feed.close()
        if self._owns_client:
            await self.client.close()
        await self._feed.finish()

    async def __aenter__(self) -> MongoNotifyAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@dataclass(frozen=True)
class _Message:
    """What one publish writes: wake-hint budgets by type, and message keys by topic."""

    budgets: Mapping[str, int]
    keys: Mapping[str, Sequence[str]]

    @staticmethod
    def of(notifications: Notifications) -> _Message:
        return _Message(
            dict(notifications.ready),
            {
                SCHEDULED: notifications.scheduled_types(),
                CHAIN_CLOSED: sorted(notifications.closed_chains),
                OWNERSHIP_LOST: sorted(notifications.ownership_lost),
            },
        )
