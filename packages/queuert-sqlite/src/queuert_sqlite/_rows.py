"""Mapping rows of the job table to :class:`queuert.state.StoredJob`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from queuert.json import loads_stored
from queuert.state import (
    READ_OUTPUT,
    STORED_FIELDS,
    UNREADABLE_TIME,
    StoredJob,
    derive_status,
)

__all__ = ["COLUMNS", "NCOLS", "columns", "job_from_row", "make_job"]

COLUMNS = STORED_FIELDS
NCOLS = len(COLUMNS)

# positions used by the adapter
I_ID = 0
I_OUTCOME = 7
I_SCHEDULED_AT = 9
I_LEASED_BY = 16
I_LEASED_UNTIL = 17
I_CREATED_AT = 8
I_PRIORITY = 22


_FIELDS = frozenset(f.name for f in dataclasses.fields(StoredJob))
_FAST = (
    frozenset((*COLUMNS, "status", "unreadable")) == _FIELDS
    and "__slots__" not in vars(StoredJob)
    and getattr(StoredJob, "__post_init__", None) is None
    and StoredJob.__new__ is object.__new__
)
"""Build StoredJob without its generated ``__init__`` (23 frozen ``object.__setattr__`` calls cost
several microseconds per row). Only while StoredJob is a plain frozen dataclass with exactly these
fields (``unreadable`` is left to its class default) and no ``__post_init__``; otherwise rows go
through the normal constructor."""


def make_job(values: dict[str, Any]) -> StoredJob:
    """A StoredJob from a dict holding every field (see ``_FAST``)."""
    if _FAST:
        job: StoredJob = object.__new__(StoredJob)
        job.__dict__.update(values)
        return job
    return StoredJob(**values)


def columns(alias: str) -> str:
    """The select list of a job row under table alias ``alias``."""
    return ", ".join(f"{alias}.{name}" for name in COLUMNS)


def _ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text + "+00:00")


_iso = datetime.fromisoformat

_TIME_FIELDS = ("created_at", "scheduled_at", "completed_at", "last_attempt_at", "leased_until")
_TIME_POSITIONS = tuple(COLUMNS.index(name) for name in _TIME_FIELDS)


def job_from_row(
    row: Sequence[Any], now: datetime, offset: int = 0, output: Any = READ_OUTPUT
) -> StoredJob:
    """The StoredJob of the ``NCOLS`` columns of ``row`` starting at ``offset``; ``output``, when
    given, is the value of its output column (the caller just wrote it from that value), not
    parsed again.

    A stored time that is not a time (edited by hand) never fails the read: it reads as
    :data:`~queuert.state.UNREADABLE_TIME` (``None`` where the field is optional) and the job is
    marked ``unreadable``, which a worker fails at once.
    """
    try:
        return _job_from_row(row, now, offset, output)
    except (ValueError, TypeError):
        pass
    values = list(row[offset : offset + NCOLS])
    unreadable: tuple[str, str] | None = None
    for name, position in zip(_TIME_FIELDS, _TIME_POSITIONS, strict=True):
        text = values[position]
        if text is None:
            continue
        try:
            _ts(text)
        except (ValueError, TypeError):
            if unreadable is None:
                unreadable = (name, f"{str(text)[:40]!r} is not a time")
            required = name in ("created_at", "scheduled_at")
            values[position] = _UNREADABLE_TEXT if required else None
    job = _job_from_row(values, now, 0, output)
    if unreadable is None:  # not a time field: let the original error surface
        return _job_from_row(row, now, offset, output)
    return dataclasses.replace(job, unreadable=unreadable)


_UNREADABLE_TEXT = UNREADABLE_TIME.strftime("%Y-%m-%d %H:%M:%S.%f")


def _job_from_row(
    row: Sequence[Any], now: datetime, offset: int, output: Any = READ_OUTPUT
) -> StoredJob:
    """Hot (every claimed and every closed job): a ``scheduled_at`` equal to ``created_at``, as for
    every job started without a schedule, shares its parsed value."""
    (
        job_id,
        type_name,
        chain_id,
        chain_type_name,
        chain_index,
        input_text,
        output_text,
        outcome,
        created_at,
        scheduled_at,
        completed_at,
        completed_by,
        succeeded_by_job_id,
        attempt,
        last_attempt_at,
        last_attempt_error,
        leased_by,
        leased_until,
        blocked,
        deduplication_key,
        chain_trace_context,
        trace_context,
        priority,
        limit_key,
    ) = row[offset : offset + NCOLS] if offset or len(row) != NCOLS else row
    created = _iso(created_at + "+00:00")
    scheduled = created if scheduled_at == created_at else _iso(scheduled_at + "+00:00")
    lease_end = None if leased_until is None else _iso(leased_until + "+00:00")
    is_blocked = bool(blocked)
    if output is READ_OUTPUT:
        output = None if output_text is None else loads_stored(output_text)
    return make_job(
        {
            "id": job_id,
            "type_name": type_name,
            "chain_id": chain_id,
            "chain_type_name": chain_type_name,
            "chain_index": chain_index,
            "input": loads_stored(input_text),
            "output": output,
            "status": derive_status(
                outcome=outcome,
                succeeded_by_job_id=succeeded_by_job_id,
                leased_until=lease_end,
                blocked=is_blocked,
                scheduled_at=scheduled,
                now=now,
            ),
            "outcome": outcome,
            "created_at": created,
            "scheduled_at": scheduled,
            "completed_at": None if completed_at is None else _iso(completed_at + "+00:00"),
            "completed_by": completed_by,
            "succeeded_by_job_id": succeeded_by_job_id,
            "attempt": attempt,
            "last_attempt_at": (
                None if last_attempt_at is None else _iso(last_attempt_at + "+00:00")
            ),
            "last_attempt_error": last_attempt_error,
            "leased_by": leased_by,
            "leased_until": lease_end,
            "blocked": is_blocked,
            "deduplication_key": deduplication_key,
            "chain_trace_context": chain_trace_context,
            "trace_context": trace_context,
            "priority": priority,
            "limit_key": limit_key,
        }
    )
