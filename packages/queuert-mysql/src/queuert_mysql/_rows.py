"""Decoding result rows into :class:`~queuert.state.StoredJob` / :class:`~queuert.state.StoredChain`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from queuert.json import loads_stored
from queuert.state import STORED_FIELDS, UNREADABLE_TIME, StoredChain, StoredJob

from queuert_mysql._sql import JOB_ID, NCOLS

__all__ = ["chain_from_row", "job_from_row", "naive", "read_time", "utc"]

_UTC = timezone.utc
_new = object.__new__

_FIELDS = (*STORED_FIELDS, "status")
"""The :class:`StoredJob` field of each column :func:`~queuert_mysql._sql.cols` selects, in order."""

# ``unreadable`` is set from a row only when a time column holds what is not a time (see below)
assert len(_FIELDS) == NCOLS
assert {*_FIELDS, "unreadable"} == set(StoredJob.__dataclass_fields__)

_TIMESTAMPS = ("created_at", "scheduled_at", "completed_at", "last_attempt_at", "leased_until")


def utc(value: datetime) -> datetime:
    """A ``DATETIME`` value (naive, in UTC: the adapter stores nothing else) as an aware datetime."""
    return value.replace(tzinfo=_UTC)


def naive(value: datetime) -> datetime:
    """An aware datetime as the naive UTC value a ``DATETIME(6)`` parameter takes."""
    return value.astimezone(_UTC).replace(tzinfo=None)


def job_from_row(row: Sequence[Any], o: int = 0) -> StoredJob:
    """The job whose :func:`~queuert_mysql._sql.cols` start at column ``o``.

    Hot (every claimed and every closed job): fills the frozen dataclass's ``__dict__`` from the
    columns in one step instead of calling its 23-argument ``__init__``.
    """
    values = dict(zip(_FIELDS, tuple(row)[o : o + NCOLS], strict=True))
    text = values["input"]
    if text is not None:
        values["input"] = loads_stored(text)
    text = values["output"]
    if text is not None:
        values["output"] = loads_stored(text)
    for name in _TIMESTAMPS:
        stamp = values[name]
        if stamp is not None:
            if stamp.__class__ is datetime:
                values[name] = stamp.replace(tzinfo=_UTC)
            else:
                _unreadable(name, stamp, values)
    values["blocked"] = bool(values["blocked"])
    job: StoredJob = _new(StoredJob)
    job.__dict__.update(values)
    return job


def _unreadable(name: str, stored: object, values: dict[str, Any]) -> None:
    """A ``DATETIME`` that is no date (a zero date such as ``0000-00-00``, which the server stores
    unless its ``sql_mode`` has ``NO_ZERO_DATE``/``NO_ZERO_IN_DATE``; the driver returns it as
    text): it reads as :data:`~queuert.state.UNREADABLE_TIME` (``None`` where it is optional) and
    the job is marked ``unreadable``, which a worker fails at once."""
    required = name in ("created_at", "scheduled_at")
    values[name] = UNREADABLE_TIME if required else None
    if "unreadable" not in values:
        values["unreadable"] = (name, f"{str(stored)[:40]!r} is not a date")


def read_time(value: object) -> datetime | None:
    """A ``DATETIME`` the driver returned as an aware datetime; ``None`` for a zero date (text)."""
    return value.replace(tzinfo=_UTC) if isinstance(value, datetime) else None


def chain_from_row(row: Sequence[Any], o: int = 0) -> StoredChain:
    """A chain from two consecutive job column groups (root, then tail)."""
    tail = job_from_row(row, o + NCOLS)
    if row[o + JOB_ID] == tail.id:  # a one-job chain
        return StoredChain(root=tail, tail=tail)
    return StoredChain(root=job_from_row(row, o), tail=tail)
