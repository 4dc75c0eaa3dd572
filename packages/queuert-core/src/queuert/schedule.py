"""When a job may run (``Schedule``) and how chain starts are deduplicated (``Deduplication``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal

from queuert.duration import Duration, to_timedelta
from queuert.errors import UsageError

__all__ = [
    "LATEST_SCHEDULE",
    "LONGEST_DELAY",
    "MAX_DEDUPLICATION_KEY_LENGTH",
    "Deduplication",
    "DeduplicationScope",
    "Schedule",
    "scheduled_at",
]


LATEST_SCHEDULE = datetime(9000, 1, 1, tzinfo=timezone.utc)
"""``Schedule(at=...)`` must be earlier: every backend stores it and can add a retry delay to it."""

LONGEST_DELAY = timedelta(days=365_000)
"""The longest ``Schedule(after=...)``: about a thousand years."""


@dataclass(frozen=True, init=False)
class Schedule:
    """Run at an absolute time (``at``, timezone-aware) or after a delay (``after``, a ``timedelta``
    or seconds; it reads back as a ``timedelta``); never both.

    A time in the past means now. The store's clock decides what "now" is. ``at`` must be before
    the year 9000 and ``after`` at most about a thousand years (:data:`LONGEST_DELAY`): a
    :class:`~queuert.errors.UsageError` says so at once, instead of a backend overflowing later.
    """

    at: datetime | None = None
    after: timedelta | None = None

    def __init__(self, at: datetime | None = None, after: Duration | None = None) -> None:
        if at is not None and after is not None:
            raise UsageError("a schedule takes `at` or `after`, not both")
        if at is not None:
            if not isinstance(at, datetime):
                raise UsageError(f"schedule `at` must be a datetime, not {at!r}")
            if at.tzinfo is None:
                raise UsageError(
                    "schedule `at` must be timezone-aware (e.g. datetime.now(timezone.utc))"
                )
            at = at.astimezone(timezone.utc)
            if at >= LATEST_SCHEDULE:
                raise UsageError(
                    f"schedule `at` must be before {LATEST_SCHEDULE:%Y-%m-%d}, not {at.isoformat()}"
                )
        delay = None if after is None else to_timedelta(after, name="schedule `after`")
        if delay is not None and delay > LONGEST_DELAY:
            raise UsageError(
                f"schedule `after` is at most {LONGEST_DELAY.days:,} days, not {delay.days:,}"
            )
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "after", delay)

    def __str__(self) -> str:
        if self.at is not None:
            return f"at {self.at.isoformat()}"
        if self.after is not None:
            return f"after {self.after.total_seconds():g}s"
        return "now"


def scheduled_at(schedule: Schedule | None, now: datetime) -> datetime:
    """The ``scheduled_at`` of a job given ``schedule`` at ``now`` (the store's clock): ``at``, or
    ``now + after``, never earlier than ``now``; ``now`` when there is no schedule. (A schedule
    reaches at most :data:`LONGEST_DELAY` ahead, so the sum stays within the calendar.)"""
    if schedule is None:
        return now
    if schedule.at is not None:
        return max(schedule.at, now)
    if schedule.after is not None:
        return now + schedule.after
    return now


DeduplicationScope = Literal["open", "any"]

MAX_DEDUPLICATION_KEY_LENGTH = 255
"""The longest deduplication key, in characters (every backend indexes keys; hash longer ones)."""


def _check_key(key: str) -> None:
    """Refuse keys no backend can store exactly: NUL, lone surrogates, too long."""
    if len(key) > MAX_DEDUPLICATION_KEY_LENGTH:
        raise UsageError(
            f"a deduplication key has at most {MAX_DEDUPLICATION_KEY_LENGTH} characters,"
            f" not {len(key)} (hash a longer key)"
        )
    if "\x00" in key:
        raise UsageError("a deduplication key must not contain NUL (\\x00)")
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(
                "a deduplication key must be valid Unicode (it has a lone surrogate)"
            ) from None


@dataclass(frozen=True, init=False)
class Deduplication:
    """Start a chain only if no matching chain exists; otherwise return the existing one.

    A chain matches when it has the same chain type and ``key`` and, for ``scope="open"`` (the default),
    is still open; for ``scope="any"`` it may be closed too. ``window`` (a ``timedelta`` or seconds;
    it reads back as a ``timedelta``) limits matches to chains created within that long ago.
    ``exclude_chain_ids`` ignores those chains (a recurring chain scheduling its own next run while
    it is still open).
    """

    key: str
    scope: DeduplicationScope = "open"
    window: timedelta | None = None
    exclude_chain_ids: Sequence[str] = field(default=())

    def __init__(
        self,
        key: str,
        scope: DeduplicationScope = "open",
        window: Duration | None = None,
        exclude_chain_ids: Sequence[str] = (),
    ) -> None:
        if not isinstance(key, str) or not key:
            raise UsageError("a deduplication key must be a non-empty string")
        _check_key(key)
        if scope not in ("open", "any"):
            raise UsageError(f"deduplication scope must be 'open' or 'any', not {scope!r}")
        if isinstance(exclude_chain_ids, str):
            raise UsageError("exclude_chain_ids takes a sequence of chain ids, not one str")
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "scope", scope)
        object.__setattr__(
            self,
            "window",
            None
            if window is None
            else to_timedelta(window, name="deduplication window", positive=True),
        )
        object.__setattr__(self, "exclude_chain_ids", tuple(exclude_chain_ids))
