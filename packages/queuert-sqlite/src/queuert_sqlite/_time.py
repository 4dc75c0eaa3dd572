"""Timestamps as the adapter stores them: UTC text ``YYYY-MM-DD HH:MM:SS.ffffff`` (microseconds).

Fixed width, so text order is time order and SQL compares and ``max()``/``min()``s values directly.
It is also a format SQLite's own date functions read.

The clock. SQLite is embedded: its ``'now'`` (``julianday('now')``, ``strftime(..., 'now')``) is the
host's real-time clock read through the VFS, and every process that opens the file runs on that host
(WAL needs shared memory, so no network file systems). But SQLite only reports it with *millisecond*
resolution, which is too coarse for a queue (operations a few hundred microseconds apart would carry
the same time and lose their order). The adapter therefore reads the same clock, ``CLOCK_REALTIME``,
with microsecond resolution on the connection's thread at the start of each operation, and does the
arithmetic in Python. It never uses a caller-supplied time as "now". (A chain start whose INSERT is
deferred to the transaction's next statement reads it when ``create_jobs`` is called, on the event
loop's thread: the same clock, a moment before the row reaches SQLite, as with any statement time.)
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from queuert.schedule import Schedule
from queuert.schedule import scheduled_at as schedule_due

__all__ = ["MAX_TS", "add_delta", "format_ts", "now", "parse_ts", "read_ts", "scheduled_at"]

UTC = timezone.utc
MAX_TS = "9999-12-31 23:59:59.999999"


def format_ts(value: datetime) -> str:
    """Text form of an aware datetime (converted to UTC)."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes cannot be stored; pass a timezone-aware value")
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d} "
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
    )


def parse_ts(text: str) -> datetime:
    """The aware UTC datetime of a stored timestamp."""
    return datetime.fromisoformat(text + "+00:00")


def read_ts(text: str) -> datetime | None:
    """:func:`parse_ts`, or ``None`` for a stored text that is not a time (edited by hand)."""
    try:
        return parse_ts(text)
    except (ValueError, TypeError):
        return None


_second: tuple[int, str, datetime] = (-1, "", datetime(1970, 1, 1, tzinfo=UTC))
"""The last second :func:`now` read: (seconds since the epoch, its text up to the fraction's dot,
its datetime). Replaced as one tuple, so every thread reads a consistent one."""


def now() -> tuple[str, datetime]:
    """The store's clock now, as stored text and as an aware datetime.

    Hot (every operation): the calendar fields of the current second are computed once per second
    (``time.gmtime`` and the formatting cost more than everything else here), then only the
    microseconds change."""
    global _second
    seconds, us = divmod(time.time_ns() // 1000, 1_000_000)
    last = _second
    if last[0] != seconds:
        last = _second = _calendar(seconds)
    return f"{last[1]}{us:06d}", last[2].replace(microsecond=us)


def _calendar(seconds: int) -> tuple[int, str, datetime]:
    t = time.gmtime(seconds)
    text = (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
    )
    return (
        seconds,
        text,
        datetime(t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, 0, UTC),
    )


def add_delta(now: str, delta: timedelta) -> str:
    """``now + delta`` in stored form (saturating at the largest representable time)."""
    try:
        return format_ts(parse_ts(now) + delta)
    except OverflowError:
        return MAX_TS if delta > timedelta(0) else "0001-01-01 00:00:00.000000"


def scheduled_at(schedule: Schedule | None, now_text: str, now: datetime) -> tuple[str, datetime]:
    """A job's ``scheduled_at`` (:func:`queuert.schedule.scheduled_at` at the store's ``now``), in
    stored form and as an aware UTC datetime."""
    if schedule is None:
        return now_text, now
    due = schedule_due(schedule, now)
    if due == now:
        return now_text, now
    text = format_ts(due)
    return text, parse_ts(text)
