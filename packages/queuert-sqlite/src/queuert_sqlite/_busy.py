"""Waiting for a lock another connection holds: backoff, bounded retries, a fair ``BEGIN IMMEDIATE``.

These run on a connection's thread (they sleep with :func:`time.sleep`); the provider's retries of a
whole operation wait on the event loop instead, with the same :func:`backoff`.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from queuert_sqlite._driver import is_busy

__all__ = ["BEGIN", "backoff", "begin_immediate", "retry_busy"]

T = TypeVar("T")

logger = logging.getLogger("queuert.sqlite")

BEGIN = "BEGIN IMMEDIATE"
"""How every write transaction begins: the write lock up front, never an upgrade half-way."""


def backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): 20 ms doubling up to 1 s, with jitter."""
    return float(min(0.02 * (2**attempt), 1.0) * random.uniform(0.5, 1.0))


def retry_busy(action: Callable[[], T], retries: int, what: str | None = None) -> T:
    """Run ``action``, retrying up to ``retries`` times with backoff while SQLite reports busy
    (logged as ``what`` if given)."""
    attempt = 0
    while True:
        try:
            return action()
        except Exception as exc:
            if not is_busy(exc) or attempt >= retries:
                raise
            if what is not None:
                logger.warning(
                    "sqlite busy during %s, retrying",
                    what,
                    extra={"queuert_operation": what, "queuert_attempt": attempt + 1},
                )
            time.sleep(backoff(attempt))
            attempt += 1


def begin_immediate(raw: sqlite3.Connection, *, poll: bool, timeout: float) -> None:
    """``BEGIN IMMEDIATE``, waiting up to ``timeout`` seconds for another process's write lock.

    SQLite's own busy handler sleeps in growing steps up to 100 ms, so a process waiting in it
    can starve while other processes take and release the lock between its naps. With ``poll``
    (the provider uses it in WAL mode, with SQLite's handler switched off) this polls instead,
    every 0.1 to 2 ms with jitter (a failed attempt is one non-blocking file-lock call), which
    shares the lock fairly between processes.
    """
    if not poll:
        raw.execute(BEGIN)
        return
    deadline: float | None = None
    delay = 0.0001
    while True:
        try:
            raw.execute(BEGIN)
            return
        except Exception as exc:
            if not is_busy(exc):
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + timeout
            elif now >= deadline:
                raise
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 0.002)
