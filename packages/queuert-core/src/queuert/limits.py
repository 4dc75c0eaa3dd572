"""Concurrency limits: how many jobs of a type, and of a type with one limit key, may run at once.

A job type declares them with class keywords (``limit=``, ``key_limit=`` and ``limit_key=``, see
:class:`queuert.JobType`); workers pass them to every claim, and the state adapter enforces them in
the claim itself, across every worker, process and machine that shares the store. Nothing else holds
a slot: a job counts against its limits exactly while it is *running* (open and leased, also on an
expired lease that was not reaped yet), so a completion, a failure, a cancellation, a retry, a
released job, a deleted chain and a reaped lease all free its place with the same write that ends
its lease.

:func:`take_within_limits` is the rule every adapter applies (those that compute in Python call it;
the SQL adapters restate it in their claim statements).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from queuert.errors import UsageError

__all__ = [
    "MAX_LIMIT_KEY_LENGTH",
    "ConcurrencyLimit",
    "check_concurrency_limit",
    "check_limit_key",
    "take_within_limits",
]

T = TypeVar("T")

MAX_LIMIT_KEY_LENGTH = 200
"""The longest limit key a job type's ``limit_key`` may return (in characters)."""


@dataclass(frozen=True)
class ConcurrencyLimit:
    """The limits of one job type. ``limit``: at most this many of its jobs run at once;
    ``key_limit``: at most this many of its jobs with the same limit key (1: a singleton per key).
    ``None`` leaves that bound off; jobs without a limit key count only against ``limit``."""

    limit: int | None = None
    key_limit: int | None = None

    def __post_init__(self) -> None:
        for name in ("limit", "key_limit"):
            value = getattr(self, name)
            if value is not None:
                check_concurrency_limit(value, name)

    @property
    def is_set(self) -> bool:
        return self.limit is not None or self.key_limit is not None


def check_concurrency_limit(value: object, name: str) -> int:
    """``value`` if it is a positive int (not a bool), else a :class:`~queuert.errors.UsageError`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        raise UsageError(f"{name} must be a positive int, not {value!r}")
    return value


def check_limit_key(value: object, type_name: str) -> str:
    """A limit key returned by ``type_name``'s ``limit_key``: a string of 1 to
    :data:`MAX_LIMIT_KEY_LENGTH` characters without NUL, else a :class:`~queuert.errors.UsageError`."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_LIMIT_KEY_LENGTH or "\x00" in value:
        raise UsageError(
            f"the limit_key of {type_name!r} must return a non-empty str of at most "
            f"{MAX_LIMIT_KEY_LENGTH} characters without NUL, not {value!r}"
        )
    return value


def take_within_limits(
    candidates: Iterable[tuple[str, str | None, T]],
    *,
    limits: Mapping[str, ConcurrencyLimit],
    running_types: Mapping[str, int],
    running_keys: Mapping[tuple[str, str], int],
    want: int,
) -> tuple[list[T], bool]:
    """The rule of a limited claim, over ready ``candidates`` in claim order (each a ``(type name,
    limit key, item)`` triple): take a candidate when its type and its (type, key) both have room
    after the running jobs and the candidates taken before it, skip it otherwise (a busy key or
    type never holds back the candidates behind it), and stop at ``want``. Returns the items taken
    and whether another candidate could have been taken (``has_more``)."""
    taken: list[T] = []
    types = dict(running_types)
    keys = dict(running_keys)
    for type_name, key, item in candidates:
        bound = limits.get(type_name)
        if bound is not None:
            if bound.limit is not None and types.get(type_name, 0) >= bound.limit:
                continue
            if (
                bound.key_limit is not None
                and key is not None
                and keys.get((type_name, key), 0) >= bound.key_limit
            ):
                continue
        if len(taken) >= want:
            return taken, True
        taken.append(item)
        types[type_name] = types.get(type_name, 0) + 1
        if key is not None:
            keys[(type_name, key)] = keys.get((type_name, key), 0) + 1
    return taken, False
