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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from typing_extensions import Self

__all__ = ["NotifyAdapter", "Unsubscribe"]

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
