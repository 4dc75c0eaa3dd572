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

    def each(
        self, notifications: Sequence[Notifications]
    ) -> tuple[list[int], list[str], list[str]]:
        """The messages of every element of ``notifications``: their channels and payloads, each
        with the 1-based ordinal of the element it belongs to."""
        ordinals: list[int] = []
        channels: list[str] = []
        payloads: list[str] = []
        messages = self.messages
        for ordinal, one in enumerate(notifications, 1):
            names, texts = messages(one)
            if len(names) == 1:
                ordinals.append(ordinal)
                channels.append(names[0])
                payloads.append(texts[0])
            elif names:
                ordinals.extend([ordinal] * len(names))
                channels.extend(names)
                payloads.extend(texts)
        return ordinals, channels, payloads
