"""Local listeners of one notify topic, routed by key, with the bookkeeping for catch-up calls.

A building block for notify adapters: an adapter keeps one :class:`Listeners` per topic (job scheduled,
chain closed, ownership lost), subscribes to the server once, and dispatches each message by its key
(type name, chain id or job id). After a reconnect, :meth:`Listeners.catch_up` calls every listener
that may have missed messages, as the notify contract asks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["Listener", "Listeners"]


class Listener:
    """One ``listen_*`` call: its keys (type names, or the one chain or job id) and its callback.

    ``stale`` is True while the listener may have missed messages (the subscription was not live when it
    registered, or the connection dropped since): the next time the subscription comes up, the listener
    gets one catch-up call per key.
    """

    __slots__ = ("callback", "keys", "stale")

    def __init__(self, keys: tuple[str, ...], callback: Callable[[str], None]) -> None:
        self.keys = keys
        self.callback = callback
        self.stale = False


class Listeners:
    """The listeners of one topic; callback errors are logged on ``logger``, never raised."""

    def __init__(self, topic: str, logger: logging.Logger | None = None) -> None:
        self.topic = topic
        self._logger = logger or logging.getLogger("queuert.notify")
        self._by_key: dict[str, dict[int, Listener]] = {}
        self._all: dict[int, Listener] = {}

    def __len__(self) -> int:
        return len(self._all)

    def add(self, listener: Listener) -> None:
        self._all[id(listener)] = listener
        for key in listener.keys:
            self._by_key.setdefault(key, {})[id(listener)] = listener

    def remove(self, listener: Listener) -> None:
        if self._all.pop(id(listener), None) is None:
            return
        for key in listener.keys:
            bucket = self._by_key.get(key)
            if bucket is not None:
                bucket.pop(id(listener), None)
                if not bucket:
                    del self._by_key[key]

    def dispatch(self, key: str) -> None:
        bucket = self._by_key.get(key)
        if bucket:
            for listener in list(bucket.values()):
                self._call(listener, key)

    def mark_stale(self) -> None:
        for listener in self._all.values():
            listener.stale = True

    def catch_up(self) -> None:
        """Calls every stale listener once per key, so it re-checks whatever it may have missed."""
        for listener in list(self._all.values()):
            if listener.stale and id(listener) in self._all:
                listener.stale = False
                for key in listener.keys:
                    self._call(listener, key)

    def clear(self) -> None:
        self._by_key.clear()
        self._all.clear()

    def _call(self, listener: Listener, key: str) -> None:
        try:
            listener.callback(key)
        except Exception:
            self._logger.exception(
                "queuert notify listener failed",
                extra={"queuert_topic": self.topic, "queuert_key": key},
            )
