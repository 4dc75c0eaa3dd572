"""The notify adapter contract: wake-ups between processes.

Notifications are *hints*. The system stays correct if any of them is lost, delayed or delivered twice:
workers also poll, and waiters re-read the state. What notifications buy is latency.

Messages:

* **job scheduled** (per job type): jobs of that type may have become ready. Published after the
  transaction that created, unblocked, triggered or reaped them commits.
* **wake hints** (per job type): a budget that limits how many idle workers one batch of new jobs wakes.
  ``provide_wake_hint(t, n)`` adds ``n`` to the budget of ``t`` (additive across publishers, expiring
  after about a minute); ``consume_wake_hint(t)`` takes one unit and returns True, returns False only
  when a budget exists and is exhausted, and returns True when no budget is tracked (graceful
  degradation: adapters without a counter always return True).
* **chain closed** (per chain id): what ``wait_for_chain`` listens to.
* **job ownership lost** (per job id): the worker running that job should re-check its lease now.

Listener contract: ``listen_*`` returns once the subscription is live — or, when the server cannot
be reached, at once, with the subscription coming up when the server does — and gives back an async
``unsubscribe`` function (idempotent, safe to call after ``close()``). Callbacks are plain functions
called on the event loop; an exception in one callback is logged and never reaches the publisher or
other callbacks. Messages from one publisher on one topic arrive in the order they were published.
After a lost connection is re-established (or first established late), the adapter calls every
job-scheduled listener once per subscribed type and every chain/ownership listener once, so that
listeners re-check state for whatever they missed.

Failure contract: notifications are hints, so ``notify_*`` and ``provide_wake_hint`` never raise
connection errors into the caller (they log and count them); ``consume_wake_hint`` answers True when it
cannot tell. Calls are bounded in time. ``close()`` is idempotent; afterwards ``notify_*``/``listen_*``
raise :class:`~queuert.errors.NotifyAdapterClosedError`. The adapter is an async context manager that
closes it on exit (``async with RedisNotifyAdapter(...) as notify: ...``).

Optional, for adapters whose messages can travel inside the state adapter's transaction
(:class:`SupportsNotifyInTransaction`): the message is then part of the transaction, delivered when
it commits and dropped when it rolls back, and publishing it costs no transaction of its own. The
core asks once per client; an adapter that declines (another kind of store, another database) is
used as above, after the commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from typing_extensions import Self

from queuert._fastinit import fast_init

__all__ = [
    "Notifications",
    "NotifyAdapter",
    "NotifyInTransaction",
    "SupportsNotifyInTransaction",
    "SupportsNotifyMany",
    "Unsubscribe",
]

Unsubscribe = Callable[[], Awaitable[None]]


@runtime_checkable
class NotifyAdapter(Protocol):
    async def notify_job_scheduled(self, type_name: str) -> None: ...

    async def listen_job_scheduled(
        self, type_names: Sequence[str], callback: Callable[[str], None]
    ) -> Unsubscribe:
        """``callback(type_name)`` for every job-scheduled message of one of ``type_names``."""
        ...

    async def provide_wake_hint(self, type_name: str, count: int) -> None: ...

    async def consume_wake_hint(self, type_name: str) -> bool: ...

    async def notify_chain_closed(self, chain_id: str) -> None: ...

    async def listen_chain_closed(
        self, chain_id: str, callback: Callable[[], None]
    ) -> Unsubscribe: ...

    async def notify_job_ownership_lost(self, job_id: str) -> None: ...

    async def listen_job_ownership_lost(
        self, job_id: str, callback: Callable[[], None]
    ) -> Unsubscribe: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        """``async with adapter: ...`` yields the adapter itself and closes it on exit."""
        ...

    async def __aexit__(self, *exc: object) -> None: ...


@fast_init
@dataclass(frozen=True)
class Notifications:
    """The messages one transaction publishes (what :class:`NotifyAdapter`'s ``notify_*`` and
    ``provide_wake_hint`` calls would send one by one)."""

    ready: Mapping[str, int]
    """Jobs that became ready, counted by type: a wake hint of that count and a job-scheduled
    message for each type."""
    scheduled: frozenset[str]
    """Types with jobs scheduled for later: a job-scheduled message each."""
    closed_chains: frozenset[str]
    ownership_lost: frozenset[str]

    def scheduled_types(self) -> list[str]:
        """Every type that gets a job-scheduled message, sorted."""
        return sorted(set(self.ready) | self.scheduled)


NotifyInTransaction = Callable[[Any, Notifications], Awaitable[None]]
"""``await publish(tx, notifications)``: sends the messages inside the state adapter's transaction
``tx``; they are delivered if and when it commits. An error propagates (the transaction is then
rolled back by its owner)."""


@runtime_checkable
class SupportsNotifyInTransaction(Protocol):
    """Optional for notify adapters: publish inside the state adapter's transactions."""

    async def in_transactions_of(self, state: object, tx: Any = None) -> NotifyInTransaction | None:
        """A function publishing inside ``state``'s transactions, or ``None`` when this adapter cannot
        for that state adapter (another kind of store, another database, unreachable). Called once
        per client, usually from inside a transaction of ``state``, given as ``tx``: whatever the
        adapter needs to ask of the state's database goes through ``tx`` then, never through another
        connection of ``state`` (its pool may be held by transactions waiting for this answer).
        Never raises."""
        ...


@runtime_checkable
class SupportsNotifyMany(Protocol):
    """Optional for notify adapters: publish everything one commit (or a burst of commits)
    announces in one call, where the transport can send it at once."""

    async def notify_many(self, notifications: Notifications) -> None:
        """The messages of ``notifications`` (wake hints and all); same failure contract as the
        ``notify_*`` calls: never raises connection errors."""
        ...
