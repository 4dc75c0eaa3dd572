"""Notify adapters that need no server: in-process (one process) and no-op (polling only)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from queuert.errors import NotifyAdapterClosedError
from queuert.listeners import Listener, Listeners
from queuert.notify import Unsubscribe

__all__ = ["InProcessNotifyAdapter", "NoopNotifyAdapter"]

logger = logging.getLogger("queuert.notify")

WAKE_HINT_TTL = 60.0


class InProcessNotifyAdapter:
    """Delivers notifications to listeners in the same process (synchronously, on publish).

    The companion of the in-memory state adapter and of single-process SQLite setups. Wake-hint budgets
    are kept per type and expire 60 seconds after their last top-up.
    """

    def __init__(self, *, wake_hint_ttl: float = WAKE_HINT_TTL) -> None:
        self._scheduled = Listeners("job_scheduled", logger)
        self._chains = Listeners("chain_closed", logger)
        self._ownership = Listeners("job_ownership_lost", logger)
        self._hints: dict[str, tuple[int, float]] = {}
        self._ttl = wake_hint_ttl
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise NotifyAdapterClosedError()

    @staticmethod
    def _subscribe(
        listeners: Listeners, keys: Sequence[str], callback: Callable[[str], None]
    ) -> Unsubscribe:
        listener = Listener(tuple(dict.fromkeys(keys)), callback)
        listeners.add(listener)

        async def unsubscribe() -> None:
            listeners.remove(listener)

        return unsubscribe

    async def notify_job_scheduled(self, type_name: str) -> None:
        self._check()
        self._scheduled.dispatch(type_name)

    async def listen_job_scheduled(
        self, type_names: Sequence[str], callback: Callable[[str], None]
    ) -> Unsubscribe:
        self._check()
        return self._subscribe(self._scheduled, type_names, callback)

    async def provide_wake_hint(self, type_name: str, count: int) -> None:
        self._check()
        if count <= 0:
            return
        current = self._budget(type_name)
        self._hints[type_name] = ((current or 0) + count, time.monotonic() + self._ttl)

    async def consume_wake_hint(self, type_name: str) -> bool:
        self._check()
        current = self._budget(type_name)
        if current is None:
            return True
        if current <= 0:
            return False
        _, expires = self._hints[type_name]
        self._hints[type_name] = (current - 1, expires)
        return True

    def _budget(self, type_name: str) -> int | None:
        entry = self._hints.get(type_name)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._hints[type_name]
            return None
        return entry[0]

    async def notify_chain_closed(self, chain_id: str) -> None:
        self._check()
        self._chains.dispatch(chain_id)

    async def listen_chain_closed(self, chain_id: str, callback: Callable[[], None]) -> Unsubscribe:
        self._check()
        return self._subscribe(self._chains, [chain_id], lambda _key: callback())

    async def notify_job_ownership_lost(self, job_id: str) -> None:
        self._check()
        self._ownership.dispatch(job_id)

    async def listen_job_ownership_lost(
        self, job_id: str, callback: Callable[[], None]
    ) -> Unsubscribe:
        self._check()
        return self._subscribe(self._ownership, [job_id], lambda _key: callback())

    async def close(self) -> None:
        self._closed = True
        self._scheduled.clear()
        self._chains.clear()
        self._ownership.clear()
        self._hints.clear()


class NoopNotifyAdapter:
    """Publishes nothing and never calls listeners: workers and waiters rely on polling alone."""

    def __init__(self) -> None:
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise NotifyAdapterClosedError()

    async def _noop_unsubscribe(self) -> None:
        return None

    async def notify_job_scheduled(self, type_name: str) -> None:
        self._check()

    async def listen_job_scheduled(
        self, type_names: Sequence[str], callback: Callable[[str], None]
    ) -> Unsubscribe:
        self._check()
        return self._noop_unsubscribe

    async def provide_wake_hint(self, type_name: str, count: int) -> None:
        self._check()

    async def consume_wake_hint(self, type_name: str) -> bool:
        self._check()
        return True

    async def notify_chain_closed(self, chain_id: str) -> None:
        self._check()

    async def listen_chain_closed(self, chain_id: str, callback: Callable[[], None]) -> Unsubscribe:
        self._check()
        return self._noop_unsubscribe

    async def notify_job_ownership_lost(self, job_id: str) -> None:
        self._check()

    async def listen_job_ownership_lost(
        self, job_id: str, callback: Callable[[], None]
    ) -> Unsubscribe:
        self._check()
        return self._noop_unsubscribe

    async def close(self) -> None:
        self._closed = True
