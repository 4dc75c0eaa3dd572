"""After-commit publishing: what a committed transaction tells workers, waiters and observers.

Work done in a transaction buffers two kinds of side effects in the transaction's
:class:`~queuert.hooks.TransactionHooks`: notifications (wake-ups per job type, job types with newly
scheduled jobs, closed chains, jobs whose worker lost them) and observability events. When the hooks
flush after the commit, the events go to the observability adapter in order and the notifications to
one background publisher per client, which merges whatever accumulates while it is busy (wake-up
counts add up, ids are deduplicated), so a burst of commits costs a few publishes. A rollback drops
both; a rolled-back savepoint drops its share.

Where the notify adapter can publish inside the state adapter's transactions
(:class:`~queuert.notify.SupportsNotifyInTransaction`), a transaction the core opens sends its
notifications just before it commits, in that transaction: the store delivers them on commit and
drops them on rollback, and no transaction is spent on them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from queuert._tasks import drain
from queuert.hooks import TransactionHooks
from queuert.notify import (
    Notifications,
    NotifyAdapter,
    NotifyInTransaction,
    SupportsNotifyInTransaction,
    SupportsNotifyMany,
)
from queuert.observability import Event, NotifyAdapterError, ObservabilityAdapter
from queuert.state_publishing import SupportsCreatePublishing
from queuert.tracing import AttemptScopes, TraceContexts, handed_out

__all__ = ["EventBuffer", "NotifyBuffer", "Publisher", "Publishing"]

logger = logging.getLogger("queuert.client")

_NOTIFY_KEY = "queuert.notify"
_EVENTS_KEY = "queuert.events"


class Publisher:
    """Publishes notifications in one background task, merging whatever accumulates while it is busy
    (wake-up counts add up, ids are deduplicated), so a burst of commits costs a few publishes."""

    def __init__(self, notify: NotifyAdapter, emit: Callable[[Event], None]) -> None:
        self._notify = notify
        self._many = isinstance(notify, SupportsNotifyMany)
        """Asked once: a runtime protocol check costs microseconds, and this runs per commit."""
        self._emit = emit
        self._ready: dict[str, int] = {}
        self._scheduled: set[str] = set()
        self._closed: set[str] = set()
        self._lost: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def add(
        self, ready: Mapping[str, int], scheduled: set[str], closed: set[str], lost: set[str]
    ) -> None:
        # runs after every commit that notifies: only the non-empty parts are merged
        if ready:
            merged = self._ready
            for type_name, count in ready.items():
                merged[type_name] = merged.get(type_name, 0) + count
        if scheduled:
            self._scheduled |= scheduled
        if closed:
            self._closed |= closed
        if lost:
            self._lost |= lost
        task = self._task
        if task is None or task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._ready or self._scheduled or self._closed or self._lost:
            ready, scheduled, closed, lost = self._ready, self._scheduled, self._closed, self._lost
            self._ready, self._scheduled, self._closed, self._lost = {}, set(), set(), set()
            await self._publish(ready, scheduled, closed, lost)

    async def _publish(
        self, ready: dict[str, int], scheduled: set[str], closed: set[str], lost: set[str]
    ) -> None:
        notify = self._notify
        if self._many:
            notifications = Notifications(
                ready, frozenset(scheduled), frozenset(closed), frozenset(lost)
            )
            try:  # inline rather than through call(): one coroutine less per publish
                await cast(SupportsNotifyMany, notify).notify_many(notifications)
            except Exception as exc:
                self._emit(NotifyAdapterError(operation="notify_many", error=repr(exc)))
            return
        call = self._call
        for type_name, count in ready.items():
            await call("provide_wake_hint", notify.provide_wake_hint(type_name, count))
        for type_name in sorted(set(ready) | scheduled):
            await call("notify_job_scheduled", notify.notify_job_scheduled(type_name))
        for chain_id in closed:
            await call("notify_chain_closed", notify.notify_chain_closed(chain_id))
        for job_id in lost:
            await call("notify_job_ownership_lost", notify.notify_job_ownership_lost(job_id))

    async def _call(self, operation: str, coro: Awaitable[Any]) -> None:
        """Await one call of the notify adapter; its error becomes a :class:`NotifyAdapterError`
        event, never an exception."""
        try:
            await coro
        except Exception as exc:
            self._emit(NotifyAdapterError(operation=operation, error=repr(exc)))

    async def drain(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)


class NotifyBuffer:
    """Notifications to publish after commit."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self.ready: defaultdict[str, int] = defaultdict(int)
        """Jobs that became ready, by type (each is a wake-up hint; a ``defaultdict`` rather than a
        ``Counter``, whose construction is two Python calls per transaction)."""
        self.scheduled: set[str] = set()
        """Types with jobs scheduled for later."""
        self.closed_chains: set[str] = set()
        self.ownership_lost: set[str] = set()
        """Jobs a worker may be running that it no longer owns (completed, cancelled, deleted)."""

    def is_empty(self) -> bool:
        return not (self.ready or self.scheduled or self.closed_chains or self.ownership_lost)

    def notifications(self) -> Notifications:
        return Notifications(
            dict(self.ready),
            frozenset(self.scheduled),
            frozenset(self.closed_chains),
            frozenset(self.ownership_lost),
        )

    async def flush(self) -> None:
        if self.ready or self.scheduled or self.closed_chains or self.ownership_lost:
            # the publisher merges them into its own containers: no copies here
            self._publisher.add(self.ready, self.scheduled, self.closed_chains, self.ownership_lost)
        self.discard()

    def discard(self) -> None:
        self.ready.clear()
        self.scheduled.clear()
        self.closed_chains.clear()
        self.ownership_lost.clear()

    def snapshot(self) -> object:
        return (
            dict(self.ready),
            set(self.scheduled),
            set(self.closed_chains),
            set(self.ownership_lost),
        )

    def restore(self, snapshot: object) -> None:
        assert isinstance(snapshot, tuple)
        self.ready = defaultdict(int, snapshot[0])
        self.scheduled = set(snapshot[1])
        self.closed_chains = set(snapshot[2])
        self.ownership_lost = set(snapshot[3])


class EventBuffer:
    """Observability events to emit after commit, in order; events dropped with a rollback go to
    ``dropped`` (when given: the tracing adapter abandons the contexts they report)."""

    def __init__(
        self, emit: Callable[[Event], None], dropped: Callable[[list[Event]], None] | None
    ) -> None:
        self._emit = emit
        self._dropped = dropped
        self.events: list[Event] = []

    async def flush(self) -> None:
        events, self.events = self.events, []
        emit = self._emit
        for event in events:
            emit(event)

    def discard(self) -> None:
        if self._dropped is not None and self.events:
            self._dropped(self.events[:])
        self.events.clear()

    def snapshot(self) -> object:
        return len(self.events)

    def restore(self, snapshot: object) -> None:
        assert isinstance(snapshot, int)
        if self._dropped is not None and len(self.events) > snapshot:
            self._dropped(self.events[snapshot:])
        del self.events[snapshot:]


def _always(level: int) -> bool:
    return True


class Publishing:
    """One client's after-commit side effects: the buffers in each transaction's hooks, the
    background publisher they flush into, and flushes started from synchronous commit events."""

    def __init__(
        self, notify: NotifyAdapter, observability: ObservabilityAdapter, state: object = None
    ) -> None:
        self.notify = notify
        self._state = state
        self._in_tx_capable = state is not None and isinstance(notify, SupportsNotifyInTransaction)
        """The notify adapter may publish inside the state adapter's transactions (asked once)."""
        self._in_tx: NotifyInTransaction | None = None
        self._starts_in_tx = self._in_tx_capable and isinstance(state, SupportsCreatePublishing)
        """The state adapter can also publish in the transaction of a start without a caller's
        transaction (asked once)."""
        self._in_tx_asked = False
        self.observability = observability
        listens = getattr(observability, "listens", None)
        self.listens: Callable[[int], bool] = listens if callable(listens) else _always
        """Whether the observability adapter takes events of a logging level (its optional
        ``listens``; always, without one): hot paths build no event it would drop."""
        self.tracing: TraceContexts | None = (
            observability if isinstance(observability, TraceContexts) else None
        )
        """The observability adapter when it stores trace contexts, else ``None``."""
        self.scopes: AttemptScopes | None = (
            observability if isinstance(observability, AttemptScopes) else None
        )
        """The observability adapter when it gives handlers a scope, else ``None``."""
        self._publisher = Publisher(notify, self.emit)
        self._flushes: set[asyncio.Task[None]] = set()
        self._new_notify_buffer = lambda: NotifyBuffer(self._publisher)
        dropped = self._dropped if self.tracing is not None else None
        self._new_event_buffer = lambda: EventBuffer(self.emit, dropped)

    async def in_transaction(self, tx: Any = None) -> NotifyInTransaction | None:
        """The notify adapter's publisher inside the state adapter's transactions, or ``None``.

        Asked of the adapter until one answer arrives, then remembered. ``tx``, when the caller is
        inside a transaction of the state adapter, lets the adapter check through it: a check
        needing a connection of its own could wait forever for a pool whose connections are all
        held by transactions waiting to commit. Concurrent first asks are not serialised (a lock
        here would make those transactions wait on a check that waits on their connections)."""
        if self._in_tx_asked or not self._in_tx_capable:
            return self._in_tx
        notify = self.notify
        assert isinstance(notify, SupportsNotifyInTransaction)
        try:
            found = await notify.in_transactions_of(self._state, tx)
        except Exception:
            logger.exception("the notify adapter failed to say how it publishes")
            found = None
        if not self._in_tx_asked:
            self._in_tx, self._in_tx_asked = found, True
        return self._in_tx

    async def for_starts(self) -> NotifyInTransaction | None:
        """The publisher to hand the state adapter's
        :meth:`~queuert.state_publishing.SupportsCreatePublishing.create_jobs_publishing` when it
        starts chains in a transaction of its own, or ``None`` (it cannot: publish after the commit)."""
        if not self._starts_in_tx:
            return None
        return await self.in_transaction()

    def sends_before_commit(self, hooks: TransactionHooks) -> bool:
        """Whether :meth:`before_commit` may have something to send for ``hooks`` (callers skip
        its coroutine when not: every transaction the core opens asks)."""
        if not self._in_tx_capable or (self._in_tx_asked and self._in_tx is None):
            return False
        buffer = hooks.find(_NOTIFY_KEY)
        return isinstance(buffer, NotifyBuffer) and not buffer.is_empty()

    async def before_commit(self, tx: Any, hooks: TransactionHooks) -> None:
        """Send the notifications buffered in ``hooks`` inside ``tx`` when the notify adapter can
        (they then leave the buffer); otherwise they stay for the after-commit flush."""
        if not self._in_tx_capable:
            return
        buffer = hooks.find(_NOTIFY_KEY)
        if not isinstance(buffer, NotifyBuffer) or buffer.is_empty():
            return
        publish = self._in_tx if self._in_tx_asked else await self.in_transaction(tx)
        if publish is None:
            return
        await publish(tx, buffer.notifications())
        buffer.discard()

    def emit(self, event: Event) -> None:
        """Hand ``event`` to the observability adapter now (errors are logged, never raised)."""
        try:
            self.observability.emit(event)
        except Exception:
            logger.exception("observability adapter failed", extra={"queuert_event": event.name})

    def abandon(self, trace_contexts: list[str]) -> None:
        """Tell the tracing adapter that these contexts belong to work that will never commit."""
        if self.tracing is not None and trace_contexts:
            try:
                self.tracing.abandon(trace_contexts)
            except Exception:
                logger.exception("observability adapter failed to abandon trace contexts")

    def _dropped(self, events: list[Event]) -> None:
        self.abandon(handed_out(events))

    def notify_buffer(self, hooks: TransactionHooks) -> NotifyBuffer:
        return hooks.get(_NOTIFY_KEY, self._new_notify_buffer)

    def event_buffer(self, hooks: TransactionHooks) -> EventBuffer:
        return hooks.get(_EVENTS_KEY, self._new_event_buffer)

    def after_commit(self, hooks: TransactionHooks, event: Event) -> None:
        """Emit ``event`` once the transaction of ``hooks`` commits."""
        self.event_buffer(hooks).events.append(event)

    def publish_later(
        self, ready: dict[str, int], scheduled: set[str], closed: set[str], lost: set[str]
    ) -> None:
        """Queue notifications for the background publisher (for work already committed)."""
        self._publisher.add(ready, scheduled, closed, lost)

    def take_notifications(self, hooks: TransactionHooks) -> Notifications | None:
        """Remove the notifications buffered in ``hooks`` and return them (``None`` if there are
        none): for a caller that sends them itself, inside its transaction."""
        buffer = hooks.find(_NOTIFY_KEY)
        if not isinstance(buffer, NotifyBuffer) or buffer.is_empty():
            return None
        notifications = buffer.notifications()
        buffer.discard()
        return notifications

    def flush_sync(
        self, hooks: TransactionHooks, publish: Callable[[Notifications], None] | None
    ) -> None:
        """Flush ``hooks`` after a commit without an event loop: emit the events in order, then hand
        the notifications to ``publish`` (dropped when ``None``: the workers' polling finds the
        work). For synchronous callers, whose side effects never go through the background
        publisher of this thread."""
        notifications = self.take_notifications(hooks)
        buffer = hooks.find(_EVENTS_KEY)
        events: list[Event] = []
        if isinstance(buffer, EventBuffer):
            events, buffer.events = buffer.events, []
        hooks.discard()  # what remains is empty; marks the hooks done
        for event in events:
            self.emit(event)
        if notifications is not None and publish is not None:
            try:
                publish(notifications)
            except Exception:
                logger.exception("publishing notifications after a synchronous commit failed")

    def flush_later(self, hooks: TransactionHooks) -> None:
        """Flush hooks from a synchronous commit event, in a task awaited by :meth:`wait_published`."""
        task = asyncio.ensure_future(hooks.flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def wait_published(self) -> None:
        """Wait until the notifications of every transaction committed so far are published."""
        await drain(self._flushes)
        await self._publisher.drain()
