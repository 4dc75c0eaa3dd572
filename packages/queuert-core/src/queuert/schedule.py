"""When a job may run (``Schedule``) and how chain starts are deduplicated (``Deduplication``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal

from queuert.errors import UsageError

__all__ = ["Deduplication", "DeduplicationScope", "Schedule", "scheduled_at"]


def _as_timedelta(value: timedelta | float | int) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"a delay must be a timedelta or a number of seconds, not {value!r}")
    return timedelta(seconds=value)


@dataclass(frozen=True)
class Schedule:
    """Run at an absolute time (``at``, timezone-aware) or after a delay (``after``); never both.

    A time in the past means now. The store's clock decides what "now" is.
    """

    at: datetime | None = None
    after: timedelta | None = None

    def __post_init__(self) -> None:
        if self.at is not None and self.after is not None:
            raise UsageError("a schedule takes `at` or `after`, not both")
        if self.at is not None:
            if not isinstance(self.at, datetime):
                raise UsageError(f"schedule `at` must be a datetime, not {self.at!r}")
            if self.at.tzinfo is None:
                raise UsageError(
                    "schedule `at` must be timezone-aware (e.g. datetime.now(timezone.utc))"
                )
            object.__setattr__(self, "at", self.at.astimezone(timezone.utc))
        if self.after is not None:
            after = _as_timedelta(self.after)
            if after < timedelta(0):
                after = timedelta(0)
            object.__setattr__(self, "after", after)

    @classmethod
    def of(cls, *, at: object = None, after: timedelta | float | None = None) -> Schedule:
        if at is not None and not isinstance(at, datetime):
            raise UsageError(f"`at` must be a datetime, not {at!r}")
        return cls(at=at, after=None if after is None else _as_timedelta(after))

    def __str__(self) -> str:
        if self.at is not None:
            return f"at {self.at.isoformat()}"
        if self.after is not None:
            return f"after {self.after.total_seconds():g}s"
        return "now"


_LATEST = datetime.max.replace(tzinfo=timezone.utc)


def scheduled_at(schedule: Schedule | None, now: datetime) -> datetime:
    """The ``scheduled_at`` of a job given ``schedule`` at ``now`` (the store's clock): ``at``, or
    ``now + after``, never earlier than ``now``; ``now`` when there is no schedule. A delay beyond
    the calendar saturates at the latest representable time."""
    if schedule is None:
        return now
    if schedule.at is not None:
        return max(schedule.at, now)
    if schedule.after is not None:
        try:
            return now + schedule.after
        except OverflowError:
            return _LATEST
    return now


DeduplicationScope = Literal["open", "any"]


@dataclass(frozen=True)
class Deduplication:
    """Start a chain only if no matching chain exists; otherwise return the existing one.

    A chain matches when it has the same chain type and ``key`` and, for ``scope="open"`` (the default),
    is still open; for ``scope="any"`` it may be closed too. ``window`` limits matches to chains created
    within that long ago. ``exclude_chain_ids`` ignores those chains (a recurring chain scheduling its
    own next run while it is still open).
    """

    key: str
    scope: DeduplicationScope = "open"
    window: timedelta | None = None
    exclude_chain_ids: Sequence[str] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise UsageError("a deduplication key must be a non-empty string")
        if self.scope not in ("open", "any"):
            raise UsageError(f"deduplication scope must be 'open' or 'any', not {self.scope!r}")
        if self.window is not None:
            window = _as_timedelta(self.window)
            if window <= timedelta(0):
                raise UsageError("a deduplication window must be positive")
            object.__setattr__(self, "window", window)
        object.__setattr__(self, "exclude_chain_ids", tuple(self.exclude_chain_ids))
