"""Notify adapters that need no server: in-process (one process) and no-op (polling only)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

from queuert.duration import Duration, to_timedelta
from queuert.errors import NotifyAdapterClosedError
from queuert.listeners import Listener, Listeners
from queuert.notify import Notifications, Unsubscribe

__all__ = ["InProcessHub", "InProcessNotifyAdapter", "NoopNotifyAdapter"]

logger = logging.getLogger("queuert.notify")

WAKE_HINT_TTL = timedelta(seconds=60)


class InProcessHub:
    """What several :class:`InProcessNotifyAdapter` objects of one process share, as networked adapters
    share a server: every message published through one reaches the listeners of all of them, and
    wake-hint budgets are common (they expire ``wake_hint_ttl`` seconds after their last top-up)."""

    def __init__(self, *, wake_hint_ttl: Duration = WAKE_HINT_TTL) -> None:
        self.adapters: list[InProcessNotifyAdapter] = []
        self.hints: dict[str, tuple[int, float]] = {}
        self.wake_hint_ttl = to_timedelta(wake_hint_ttl, name="wake_hint_ttl", positive=True)
        self._ttl = self.wake_hint_ttl.total_seconds()

    def budget(self, type_name: str) -> int | None:
        entry = self.hints.get(type_name)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self.hints[type_name]
            return None
        return entry[0]


class InProcessNotifyAdapter:
    """Delivers notifications to listeners in the same process (synchronously, on publish).

    The companion of the in-memory state adapter and of single-process SQLite setups. Adapters built
    with the same ``hub`` (:class:`InProcessHub`) deliver to each other's listeners and share wake-hint
    budgets; without one, the adapter has a hub of its own. Wake-hint budgets expire 60 seconds after
    their last top-up (``wake_hint_ttl``, when the adapter creates its hub).
    """

    def __init__(
        self, *, hub: InProcessHub | None = None, wake_hint_ttl: Duration = WAKE_HINT_TTL
    ) -> None:
        self.hub = hub if hub is not None else InProcessHub(wake_hint_ttl=wake_hint_ttl)
        self._scheduled = Listeners("job_scheduled", logger)
        self._chains = Listeners("chain_closed", logger)
        self._ownership = Listeners("job_ownership_lost", logger)
        self._closed = False
        self.hub.adapters.append(self)

    def another(self) -> InProcessNotifyAdapter:
        """A new adapter on this adapter's hub (as another process would connect to the same server)."""
        self._check()
        return InProcessNotifyAdapter(hub=self.hub)

    async def interrupt(self, downtime: Duration = 0.0) -> None:
        """Detach from the hub for ``downtime`` (a ``timedelta`` or seconds), as a networked adapter loses its connection:
        messages published meanwhile do not reach this adapter's listeners, and once it re-attaches
        every listener gets one catch-up call per key (what the notify contract asks after a
        reconnect). For testing code that must survive lost notifications."""
        self._check()
        if self in self.hub.adapters:
            self.hub.adapters.remove(self)
        for listeners in (self._scheduled, self._chains, self._ownership):
            listeners.mark_stale()
        await asyncio.sleep(to_timedelta(downtime, name="downtime").total_seconds())
        if self._closed:
            return
        self.hub.adapters.append(self)
        for listeners in (self._scheduled, self._chains, self._ownership):
            listeners.catch_up()

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
        for adapter in list(self.hub.adapters):
            adapter._scheduled.dispatch(type_name)

    async def listen_job_scheduled(
        self, type_names: Sequence[str], callback: Callable[[str], None]
    ) -> Unsubscribe:
        self._check()
        return self._subscribe(self._scheduled, type_names, callback)

    async def provide_wake_hint(self, type_name: str, count: int) -> None:
        self._check()
        if count <= 0:
            return
        current = self.hub.budget(type_name)
        self.hub.hints[type_name] = ((current or 0) + count, time.monotonic() + self.hub._ttl)

    async def consume_wake_hint(self, type_name: str) -> bool:
        self._check()
        current = self.hub.budget(type_name)
        if current is None:
            return True
        if current <= 0:
            return False
        _, expires = self.hub.hints[type_name]
        self.hub.hints[type_name] = (current - 1, expires)
        return True

    async def notify_chain_closed(self, chain_id: str) -> None:
        self._check()
        for adapter in list(self.hub.adapters):
            adapter._chains.dispatch(chain_id)

    async def notify_many(self, notifications: Notifications) -> None:
        """Every message of a commit (or a burst of commits) in one call (see :func:`_one_by_one`)."""
        self._check()
        await _one_by_one(self, notifications)

    async def listen_chain_closed(self, chain_id: str, callback: Callable[[], None]) -> Unsubscribe:
        self._check()
        return self._subscribe(self._chains, [chain_id], lambda _key: callback())

    async def notify_job_ownership_lost(self, job_id: str) -> None:
        self._check()
        for adapter in list(self.hub.adapters):
            adapter._ownership.dispatch(job_id)

    async def listen_job_ownership_lost(
        self, job_id: str, callback: Callable[[], None]
    ) -> Unsubscribe:
        self._check()
        return self._subscribe(self._ownership, [job_id], lambda _key: callback())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self in self.hub.adapters:
            self.hub.adapters.remove(self)
        self._scheduled.clear()
        self._chains.clear()
        self._ownership.clear()
        if not self.hub.adapters:
            self.hub.hints.clear()

    async def __aenter__(self) -> InProcessNotifyAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class NoopNotifyAdapter:
    """Publishes nothing and never calls listeners: workers and waiters rely on polling alone."""

    def another(self) -> NoopNotifyAdapter:
        """Another no-op adapter (for symmetry with :meth:`InProcessNotifyAdapter.another`)."""
        self._check()
        return NoopNotifyAdapter()

    async def interrupt(self, downtime: Duration = 0.0) -> None:
        """Nothing to lose: waits ``downtime`` (for symmetry with the in-process adapter)."""
        self._check()
        await asyncio.sleep(to_timedelta(downtime, name="downtime").total_seconds())

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

    async def notify_many(self, notifications: Notifications) -> None:
        """Publishes nothing, in one call for a whole commit's messages (see :func:`_one_by_one`)."""
        self._check()
        await _one_by_one(self, notifications)

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

    async def __aenter__(self) -> NoopNotifyAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _one_by_one(
    adapter: InProcessNotifyAdapter | NoopNotifyAdapter, notifications: Notifications
) -> None:
    """Send ``notifications`` through the adapter's one-by-one methods, in their order (wake
    hints, job-scheduled, chain-closed, ownership-lost), so that a subclass overriding one of them
    sees its messages although the core hands a commit's messages over in one call."""
    for type_name, count in notifications.ready.items():
        await adapter.provide_wake_hint(type_name, count)
    for type_name in notifications.scheduled_types():
        await adapter.notify_job_scheduled(type_name)
    for chain_id in notifications.closed_chains:
        await adapter.notify_chain_closed(chain_id)
    for job_id in notifications.ownership_lost:
        await adapter.notify_job_ownership_lost(job_id)
