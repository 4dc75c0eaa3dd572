"""Retry backoff and lease settings."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from queuert.errors import UsageError

__all__ = ["Backoff", "Lease"]


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``min(initial * multiplier**(n-1), maximum)`` seconds for the
    n-th consecutive failure, then spread by ``±jitter`` (a fraction) so retries do not synchronise.

    Defaults: 10 s, x2, capped at 300 s, ±10 %.
    """

    initial: float = 10.0
    multiplier: float = 2.0
    maximum: float = 300.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "initial", _seconds(self.initial))
        object.__setattr__(self, "maximum", _seconds(self.maximum))
        if self.initial < 0 or self.maximum < 0 or self.multiplier < 1:
            raise UsageError("backoff needs initial >= 0, maximum >= 0 and multiplier >= 1")
        if not 0 <= self.jitter < 1:
            raise UsageError("backoff jitter is a fraction in [0, 1)")

    def base_delay(self, failures: int) -> float:
        """The delay before jitter for the ``failures``-th consecutive failure (1-based)."""
        exponent = max(failures, 1) - 1
        try:
            delay = self.initial * (self.multiplier**exponent)
        except OverflowError:
            delay = self.maximum
        return min(delay, self.maximum)

    def delay(self, failures: int) -> float:
        base = self.base_delay(failures)
        if self.jitter == 0 or base == 0:
            return base
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


@dataclass(frozen=True)
class Lease:
    """How long a claimed job is owned (``duration``) and how often the owner renews it."""

    duration: float = 60.0
    renew_every: float = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "duration", _seconds(self.duration))
        object.__setattr__(self, "renew_every", _seconds(self.renew_every))
        if self.duration <= 0 or self.renew_every <= 0:
            raise UsageError("lease duration and renewal interval must be positive")
        if self.renew_every >= self.duration:
            raise UsageError(
                "a lease must be renewed more often than it lasts (renew_every < duration)"
            )
