"""Decoding result rows into :class:`~queuert.state.StoredJob` / :class:`~queuert.state.StoredChain`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from queuert.json import loads_stored
from queuert.state import (
    READ_OUTPUT,
    STORED_FIELDS,
    UNREADABLE_TIME,
    CompleteResult,
    Completion,
    StoredChain,
    StoredJob,
)

from queuert_postgres._sql import JOB_ID, NCOLS, ClosedRow

__all__ = [
    "chain_from_row",
    "closed_job",
    "complete_result",
    "job_from_claim_row",
    "job_from_row",
    "time_from_micros",
    "utc",
]

_UTC = timezone.utc


def utc(value: datetime) -> datetime:
    """Timestamps come back aware; normalise the zone object to ``timezone.utc``."""
    if value.tzinfo is _UTC:
        return value
    return value.astimezone(_UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_TIMES: dict[int, datetime] = {}
"""The times :func:`time_from_micros` built, by their microseconds (a claim's rows share their
attempt and lease times, a group commit's its close time, a batch of starts its creation time)."""
_TIMES_KEPT = 4096


def time_from_micros(value: int) -> datetime:
    """The UTC time ``value`` microseconds after the Unix epoch (what :func:`~queuert_postgres._sql.
    micros` selects), the same object for the same time while it is remembered."""
    found = _TIMES.get(value)
    if found is not None:
        return found
    if len(_TIMES) >= _TIMES_KEPT:
        _TIMES.clear()
    found = _TIMES[value] = _EPOCH + timedelta(microseconds=value)
    return found


_new = object.__new__
_set = object.__setattr__

_FIELDS = (*STORED_FIELDS, "status", "unreadable")
"""The :class:`StoredJob` field of each column :func:`~queuert_postgres._sql.cols` selects, in order."""

assert len(_FIELDS) == NCOLS
assert set(_FIELDS) == set(StoredJob.__dataclass_fields__)

assert tuple(CompleteResult.__dataclass_fields__) == ("job", "unblocked", "blocker_trace_contexts")

_TIMESTAMPS = ("created_at", "scheduled_at", "completed_at", "last_attempt_at", "leased_until")


def _reader(*, in_micros: bool = False) -> Any:
    """:func:`job_from_row` (with ``in_micros``: :func:`job_from_claim_row`), generated: one dict
    display over the row's columns, each read by its index (no ``zip`` over field names, no second
    pass over the timestamps)."""
    items = []
    for k, name in enumerate(_FIELDS):
        at = f"row[o + {k}]" if k else "row[o]"
        if name == "input":
            value = f"None if (v := {at}) is None else loads_stored(v)"
        elif name == "output":
            value = f"output if output is not READ_OUTPUT else None if (v := {at}) is None else loads_stored(v)"
        elif name in _TIMESTAMPS and in_micros:
            value = f"v if (v := {at}) is None else _TIMES.get(v) or _time(v)"
        elif name in _TIMESTAMPS:
            value = f"v if (v := {at}) is None or v.tzinfo is _UTC else v.astimezone(_UTC)"
        else:
            value = at
        items.append(f"        {name!r}: ({value}),")
    source = "\n".join(
        [
            "def job_from_row(row, o=0, output=READ_OUTPUT):",
            "    values = {",
            *items,
            "    }",
            "    bad = values['unreadable']",
            "    if bad is not None:",
            "        values['unreadable'] = _unreadable(bad, values)",
            "    job = _new(StoredJob)",
            "    _set(job, '__dict__', values)",
            "    return job",
        ]
    )
    namespace: dict[str, Any] = {
        "__name__": __name__,
        "READ_OUTPUT": READ_OUTPUT,
        "_UTC": _UTC,
        "_new": _new,
        "_set": _set,
        "_unreadable": _unreadable,
        "loads_stored": loads_stored,
        "StoredJob": StoredJob,
        "_TIMES": _TIMES,
        "_time": time_from_micros,
    }
    exec(source, namespace)
    return namespace["job_from_row"]


def _unreadable(bad: str, values: dict[str, Any]) -> tuple[str, str]:
    """A time Python cannot read (before the year 1, after 9999, or infinite; selected as NULL):
    the required ones read as :data:`~queuert.state.UNREADABLE_TIME`, and the job says which."""
    field, _, text = bad.partition(" ")
    for name in ("created_at", "scheduled_at"):
        if values[name] is None:
            values[name] = UNREADABLE_TIME
    return field, f"{text[:40]!r} is out of the range of times Python can read"


class _JobFromRow(Protocol):
    def __call__(self, row: Sequence[Any], o: int = 0, output: Any = READ_OUTPUT) -> StoredJob: ...


job_from_row: _JobFromRow = _reader()
"""``job_from_row(row, o=0, output=...)``: the job whose :func:`~queuert_postgres._sql.cols` start
at column ``o``; ``output``, when given, is the value of its output column (the caller just wrote
it from that value), not parsed again.

Hot (every claimed and every closed job): the frozen dataclass's ``__dict__`` is the dict built
from the columns (no copy of the row, no 23-argument ``__init__``)."""


job_from_claim_row: _JobFromRow = _reader(in_micros=True)
""":func:`job_from_row` of a row whose times are selected as microseconds
(``cols(..., in_micros=True)``: the claims)."""


def chain_from_row(row: Sequence[Any], o: int = 0) -> StoredChain:
    """A chain from two consecutive job column groups (root, then tail)."""
    tail = job_from_row(row, o + NCOLS)
    if (
        row[o + JOB_ID] == tail.id
    ):  # a one-job chain: the tail columns are the freshest (a locked read)
        return StoredChain(root=tail, tail=tail)
    return StoredChain(root=job_from_row(row, o), tail=tail)


def closed_job(
    completion: Completion, row: Sequence[Any], o: int, worker_id: str | None
) -> StoredJob:
    """The job ``completion`` closed, from its claimed job and the :class:`ClosedRow` columns that
    start at column ``o`` (times in microseconds)."""
    last_attempt_at = row[o + ClosedRow.LAST_ATTEMPT_AT]
    return completion.closed_job(
        completed_at=time_from_micros(row[o + ClosedRow.COMPLETED_AT]),
        completed_by=worker_id,
        attempt=row[o + ClosedRow.ATTEMPT],
        last_attempt_at=None if last_attempt_at is None else time_from_micros(last_attempt_at),
    )


def complete_result(
    job: StoredJob, unblocked: list[StoredJob], blocker_trace_contexts: list[str]
) -> CompleteResult:
    """A :class:`CompleteResult` (hot: every closed job), its ``__dict__`` filled in one step."""
    result: CompleteResult = _new(CompleteResult)
    _set(
        result,
        "__dict__",
        {"job": job, "unblocked": unblocked, "blocker_trace_contexts": blocker_trace_contexts},
    )
    return result
