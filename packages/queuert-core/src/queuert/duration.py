"""Durations: every duration queuert takes is a ``timedelta`` or a number of seconds, and every duration
it gives back (``Lease.duration``, ``worker.poll_interval``, ``Schedule.after``, ...) is a ``timedelta``.

Measurements in observability events (``duration``, ``waited``, ``retry_in``) are the exception: they
are float seconds, the unit log and metrics pipelines expect.
"""

from __future__ import annotations

import math
from datetime import timedelta

from queuert.errors import UsageError

__all__ = ["Duration", "to_timedelta"]

Duration = timedelta | float
"""A ``timedelta`` or a number of seconds (an ``int`` is a ``float`` to type checkers)."""

_ZERO = timedelta(0)


def to_timedelta(value: Duration, *, name: str, positive: bool = False) -> timedelta:
    """``value`` as a ``timedelta``; :class:`~queuert.errors.UsageError` for anything that is not a
    finite, non-negative (with ``positive``: greater than zero) duration, named ``name`` in the
    message."""
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise UsageError(f"{name} must be a finite duration, not {value!r}")
        try:
            result = timedelta(seconds=value)
        except OverflowError:
            raise UsageError(f"{name} is too long: {value!r} seconds") from None
    else:
        raise UsageError(f"{name} must be a timedelta or a number of seconds, not {value!r}")
    if result < _ZERO:
        raise UsageError(f"{name} must not be negative, not {value!r}")
    if positive and result == _ZERO:
        raise UsageError(f"{name} must be positive, not {value!r}")
    return result
