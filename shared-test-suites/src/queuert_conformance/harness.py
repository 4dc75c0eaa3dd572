"""What an adapter author hands to the suites."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from queuert.notify import NotifyAdapter
from queuert.state import StateAdapter


@dataclass
class StateHarness:
    """A freshly migrated, empty store.

    ``adapter`` is the state adapter under test. Optional hooks widen what the suites can check:

    * ``poison(tx)`` makes the current statement of ``tx`` fail the way a real failing SQL statement
      does (needed for the savepoint-isolation cases; declare ``capabilities.poison_transaction``).
    * ``open_another()`` returns a second adapter over the same store (another "process"); the suites
      close it.
    * ``open_in_process`` opens a new adapter over the same store in another OS process, for the
      multi-process cases (declare ``capabilities.multi_process``). The cases start their processes
      with multiprocessing's ``spawn`` and call it there, so it must be picklable and importable in
      a fresh interpreter: a module-level function or classmethod, or a ``functools.partial`` of
      one, taking no argument and returning an awaitable of the adapter (for example
      ``functools.partial(MyAdapter.open, url, prefix=prefix)``). The processes close it.
    * ``write_raw(job_id, which, text)`` stores ``text`` as the job's ``"input"``, ``"output"``,
      ``"scheduled_at"``, ``"created_at"``, ``"completed_at"``, ``"last_attempt_at"`` or
      ``"leased_until"`` exactly as it is, bypassing the adapter (as an operator
      editing the row by hand, or an older version, would), for the poison-row cases. It returns
      False when the store cannot hold that text at all (a JSON column and a text that is not JSON,
      a typed time column and a text that is not a time of its type): those cases then try another
      text or are not applicable. For times the cases try ``"2000-01-01 not a time"``, then
      ``"0044-03-15 12:00:00+00 BC"`` (PostgreSQL's text form of a time before the year 1, which
      Python cannot read), then ``"0000-00-00 00:00:00"`` (MySQL's zero date): a store stores the
      first its time type can hold (converted as it needs).
    * ``open_sharing()`` returns a second adapter built over ``adapter``'s own connections (its
      pool, provider or store), which it does not own: closing it must close it and leave the
      connections to their owner. The suites close it.
    """

    adapter: StateAdapter[Any]
    poison: Callable[[Any], Awaitable[None]] | None = None
    open_another: Callable[[], Awaitable[StateAdapter[Any]]] | None = None
    open_sharing: Callable[[], Awaitable[StateAdapter[Any]]] | None = None
    open_in_process: Callable[[], Awaitable[StateAdapter[Any]]] | None = None
    write_raw: Callable[[str, str, str], Awaitable[bool]] | None = None


@dataclass
class NotifyHarness:
    """A notify adapter under test.

    ``open_another()`` returns a second adapter connected to the same server (another process), used
    for fan-out across connections and shared wake-hint budgets; the suites close it. ``interrupt()`` drops the adapter's
    connections (as a server restart would) so the suites can check recovery; it returns once the
    drop happened.
    """

    adapter: NotifyAdapter
    open_another: Callable[[], Awaitable[NotifyAdapter]] | None = None
    interrupt: Callable[[], Awaitable[None]] | None = None
    delivers: bool = True
    """False for adapters that never call listeners (the no-op adapter): the suites then check only that
    every call succeeds, that unsubscribe works and that ``close()`` behaves."""
    wake_hint_budgets: bool = True
    """False for adapters without a counter: ``consume_wake_hint`` must then always return True."""
    timeout: float = 10.0
    """Seconds a case waits for a delivery, and for the recovery after ``interrupt()``."""
