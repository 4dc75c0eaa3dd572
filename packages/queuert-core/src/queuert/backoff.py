"""Retry backoff and lease settings."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from queuert.duration import Duration, to_timedelta
from queuert.errors import UsageError

__all__ = ["Backoff", "Lease"]


@dataclass(frozen=True, init=False)
class Backoff:
    """Exponential backoff with jitter: ``min(initial * multiplier**(n-1), maximum)`` for the n-th
    consecutive failure, then spread by ``±jitter`` (a fraction) so retries do not synchronise.

    ``initial`` and ``maximum`` take a ``timedelta`` or seconds and read back as ``timedelta``.
    Defaults: 10 s, x2, capped at 300 s, ±10 %.
    """

    initial: timedelta = timedelta(seconds=10)
    multiplier: float = 2.0
    maximum: timedelta = timedelta(seconds=300)
    jitter: float = 0.1
    _initial: float = field(init=False, repr=False, compare=False)
    _maximum: float = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        initial: Duration = timedelta(seconds=10),
        multiplier: float = 2.0,
        maximum: Duration = timedelta(seconds=300),
        jitter: float = 0.1,
    ) -> None:
        initial_td = to_timedelta(initial, name="backoff initial")
        maximum_td = to_timedelta(maximum, name="backoff maximum")
        if not _finite_number(multiplier) or multiplier < 1:
            raise UsageError(f"backoff multiplier must be a number >= 1, not {multiplier!r}")
        if not _finite_number(jitter) or not 0 <= jitter < 1:
            raise UsageError(f"backoff jitter is a fraction in [0, 1), not {jitter!r}")
        setattr_ = object.__setattr__
        setattr_(self, "initial", initial_td)
        setattr_(self, "multiplier", float(multiplier))
        setattr_(self, "maximum", maximum_td)
        setattr_(self, "jitter", float(jitter))
        setattr_(self, "_initial", initial_td.total_seconds())
        setattr_(self, "_maximum", maximum_td.total_seconds())

    def base_delay(self, failures: int) -> timedelta:
        """The delay before jitter for the ``failures``-th consecutive failure (1-based)."""
        return timedelta(seconds=self._base_seconds(failures))

    def delay(self, failures: int) -> timedelta:
        """The delay, with jitter, for the ``failures``-th consecutive failure (1-based)."""
        return timedelta(seconds=self.delay_seconds(failures))

    def delay_seconds(self, failures: int) -> float:
        """:meth:`delay` in seconds (what the worker sleeps)."""
        base = self._base_seconds(failures)
        if self.jitter == 0 or base == 0:
            return base
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)

    def _base_seconds(self, failures: int) -> float:
        exponent = max(failures, 1) - 1
        try:
            delay = self._initial * (self.multiplier**exponent)
        except OverflowError:
            delay = self._maximum
        return min(delay, self._maximum)


@dataclass(frozen=True, init=False)
class Lease:
    """How long a claimed job is owned (``duration``) and how often the owner renews it
    (``renew_every``, shorter than ``duration``). Both take a ``timedelta`` or seconds and read back
    as ``timedelta``. Defaults: 60 s, renewed every 30 s."""

    duration: timedelta = timedelta(seconds=60)
    renew_every: timedelta = timedelta(seconds=30)

    def __init__(
        self,
        duration: Duration = timedelta(seconds=60),
        renew_every: Duration = timedelta(seconds=30),
    ) -> None:
        duration_td = to_timedelta(duration, name="lease duration", positive=True)
        renew_td = to_timedelta(renew_every, name="lease renew_every", positive=True)
        if renew_td >= duration_td:
            raise UsageError(
                "a lease must be renewed more often than it lasts (renew_every < duration)"
            )
        object.__setattr__(self, "duration", duration_td)
        object.__setattr__(self, "renew_every", renew_td)


def _finite_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and value not in (float("inf"), float("-inf"))
    )
