"""The publisher a :class:`~queuert_postgres.PgNotifyAdapter` gives a
:class:`~queuert_postgres.PgStateAdapter` on its database: ``publish(tx, notifications)`` sends them
in ``tx`` with one ``SELECT pg_notify(...)``, and the state adapter, which recognises it, may send
its messages in a statement of its own instead (a start without a caller's transaction: the INSERT
and its wake-ups in one autocommit statement; a worker's group commit: the UPDATE and the messages
of the jobs it closed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from queuert.notify import Notifications

from queuert_postgres._provider import Sql
from queuert_postgres._sql import MESSAGE_SEPARATOR

__all__ = ["PgPublisher"]

Messages = Callable[[Notifications], tuple[list[str], list[str]]]
Fetch = Callable[[Sql, list[Any], Any], Awaitable[Any]]


class PgPublisher:
    """Publishes inside the transactions of ``state`` (checked to be on the notify adapter's
    database). ``messages(notifications)`` are the channels and payloads to send."""

    __slots__ = ("_fetch", "_sql", "messages", "state")

    def __init__(self, state: object, messages: Messages, fetch: Fetch, sql: Sql) -> None:
        self.state = state
        self.messages = messages
        self._fetch = fetch
        self._sql = sql

    async def __call__(self, tx: Any, notifications: Notifications) -> None:
        channels, payloads = self.messages(notifications)
        if channels:
            await self._fetch(self._sql, [channels, payloads], tx)

    def each(self, notifications: Sequence[Notifications]) -> tuple[str, str, str] | None:
        """The messages of every element of ``notifications`` as three texts: their channels and
        their payloads, each joined with :data:`~queuert_postgres._sql.MESSAGE_SEPARATOR`, and the
        1-based ordinal of the element each belongs to, joined with commas (three empty texts: no
        message); ``None`` when a payload is empty or holds the separator (they cannot be joined
        then)."""
        ordinals: list[str] = []
        channels: list[str] = []
        payloads: list[str] = []
        messages = self.messages
        for ordinal, one in enumerate(notifications, 1):
            names, texts = messages(one)
            if names:
                ordinals.extend([str(ordinal)] * len(names))
                channels.extend(names)
                payloads.extend(texts)
        if not payloads:
            return "", "", ""
        joined = MESSAGE_SEPARATOR.join(payloads)
        if "" in payloads or joined.count(MESSAGE_SEPARATOR) != len(payloads) - 1:
            return None
        return MESSAGE_SEPARATOR.join(channels), joined, ",".join(ordinals)
