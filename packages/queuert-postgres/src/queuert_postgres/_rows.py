"""Decoding result rows into :class:`~queuert.state.StoredJob` / :class:`~queuert.state.StoredChain`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, cast

from queuert.json import JsonValue
from queuert.state import JobStatus, Outcome, StoredChain, StoredJob

from queuert_postgres._sql import NCOLS

__all__ = ["chain_from_row", "job_from_row", "utc"]

_UTC = timezone.utc


def utc(value: datetime) -> datetime:
    """Timestamps come back aware; normalise the zone object to ``timezone.utc``."""
    if value.tzinfo is _UTC:
        return value
    return value.astimezone(_UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def _json(text: str | None) -> JsonValue:
    if text is None:
        return None
    return cast(JsonValue, json.loads(text))


def job_from_row(row: Sequence[Any], o: int = 0) -> StoredJob:
    """The job whose :func:`~queuert_postgres._sql.cols` start at column ``o``."""
    return StoredJob(
        id=row[o],
        type_name=row[o + 1],
        chain_id=row[o + 2],
        chain_type_name=row[o + 3],
        chain_index=row[o + 4],
        input=_json(row[o + 5]),
        output=_json(row[o + 6]),
        outcome=cast("Outcome | None", row[o + 7]),
        created_at=utc(row[o + 8]),
        scheduled_at=utc(row[o + 9]),
        completed_at=_utc_or_none(row[o + 10]),
        completed_by=row[o + 11],
        succeeded_by_job_id=row[o + 12],
        attempt=row[o + 13],
        last_attempt_at=_utc_or_none(row[o + 14]),
        last_attempt_error=row[o + 15],
        leased_by=row[o + 16],
        leased_until=_utc_or_none(row[o + 17]),
        blocked=row[o + 18],
        deduplication_key=row[o + 19],
        chain_trace_context=row[o + 20],
        trace_context=row[o + 21],
        status=cast(JobStatus, row[o + 22]),
    )


def chain_from_row(row: Sequence[Any], o: int = 0) -> StoredChain:
    """A chain from two consecutive job column groups (root, then tail)."""
    tail = job_from_row(row, o + NCOLS)
    if row[o] == tail.id:  # a one-job chain: the tail columns are the freshest (a locked read)
        return StoredChain(root=tail, tail=tail)
    return StoredChain(root=job_from_row(row, o), tail=tail)
