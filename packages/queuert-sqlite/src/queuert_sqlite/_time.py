"""Timestamps as SQLite stores them: UTC text ``YYYY-MM-DD HH:MM:SS.SSS`` (millisecond precision).

This is the format of ``strftime('%Y-%m-%d %H:%M:%f', 'now')``. Fixed width, so text order is time
order and SQL can compare and ``max()`` the values directly. "Now" always comes from SQLite; Python only
adds durations to it and formats/parses values.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

__all__ = ["MAX_TS", "NOW_SQL", "add_delta", "format_ts", "parse_ts"]

UTC = timezone.utc

NOW_SQL = "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"
"""The store's clock, read once per operation."""

MAX_TS = "9999-12-31 23:59:59.999"


def format_ts(value: datetime) -> str:
    """Text form of an aware datetime (converted to UTC, truncated to milliseconds)."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes cannot be stored; pass a timezone-aware value")
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d} "
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond // 1000:03d}"
    )


def parse_ts(text: str) -> datetime:
    """The aware UTC datetime of a stored timestamp."""
    return datetime.fromisoformat(text + "+00:00")


def add_delta(now: str, delta: timedelta) -> str:
    """``now + delta`` in stored form (saturating at the largest representable time)."""
    try:
        return format_ts(parse_ts(now) + delta)
    except OverflowError:
        return MAX_TS if delta > timedelta(0) else now
