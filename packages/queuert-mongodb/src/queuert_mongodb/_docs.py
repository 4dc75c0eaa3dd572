"""Job documents: how a :class:`~queuert.state.StoredJob` is stored, and read back.

One document per job in ``{prefix}jobs``::

    _id                 ObjectId (the job id; its hex string in the public API)
    type_name, chain_type_name, chain_index, deduplication_key, trace contexts
    chain_id            ObjectId of the chain's first job (its own _id for a first job)
    input, output       JSON text (kept exactly as queuert encoded it)
    outcome             null while open; "completed", "failed", "cancelled"
    created_at, scheduled_at, completed_at, last_attempt_at, leased_until   BSON dates (UTC)
    completed_by, leased_by, last_attempt_error, attempt
    succeeded_by_job_id ObjectId or null
    blocked             true while a blocker chain is open
    blockers            [{c: ObjectId of a blocker chain, t: link trace context, o: still open}]
    chain_open          on a chain's first job: false once the chain closed
    lk                  a counter bumped by locked reads (a write that conflicts with other writers)
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from bson import ObjectId
from queuert.ids import IdPolicy
from queuert.json import loads_stored
from queuert.state import UNREADABLE_TIME, JobStatus, StoredJob, derive_status

__all__ = [
    "OBJECT_IDS",
    "job_from_doc",
    "millis",
    "oid",
    "oids",
    "status_expression",
    "until",
]

_HEX24 = re.compile(r"[0-9a-f]{24}")


def _generate() -> str:
    return str(ObjectId())


def _is_object_id(value: str) -> bool:
    return _HEX24.fullmatch(value) is not None


OBJECT_IDS = IdPolicy(
    name="objectid",
    generate=_generate,
    is_valid=_is_object_id,
    describe="a MongoDB ObjectId as 24 lower-case hexadecimal digits",
)
"""Native ObjectIds, surfaced as their lower-case hex strings. ObjectIds made by one process increase
(a seconds timestamp, then a per-process counter), as the id policy contract asks."""


def oid(value: str) -> ObjectId:
    return ObjectId(value)


def oids(values: Any) -> list[ObjectId]:
    return [ObjectId(v) for v in values]


def millis(moment: datetime) -> datetime:
    """``moment`` in UTC at the millisecond precision BSON dates hold (earlier sub-millisecond
    digits are dropped, so what is returned is exactly what reads back)."""
    moment = moment.astimezone(timezone.utc)
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


_MAX = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc)


def until(now: datetime, delta: timedelta) -> datetime:
    try:
        return millis(now + delta)
    except OverflowError:
        return _MAX


def _id(value: Any) -> str | None:
    return None if value is None else str(value)


_TIMES = ("created_at", "scheduled_at", "completed_at", "last_attempt_at", "leased_until")
_REQUIRED_TIMES = ("created_at", "scheduled_at")


def _unreadable_times(doc: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """``doc`` with every time that is not a BSON date (a hand edit stored another type) replaced
    by :data:`~queuert.state.UNREADABLE_TIME` (``None`` where optional), and the first such field
    with its reason."""
    unreadable: tuple[str, str] | None = None
    for name in _TIMES:
        value = doc.get(name)
        if value is None or isinstance(value, datetime):
            continue
        if unreadable is None:
            unreadable = (name, f"{str(value)[:40]!r} is not a time")
        doc = {**doc, name: UNREADABLE_TIME if name in _REQUIRED_TIMES else None}
    return doc, unreadable


def job_from_doc(doc: dict[str, Any], now: datetime, status: JobStatus | None = None) -> StoredJob:
    """The :class:`StoredJob` of a document read at ``now`` (the store's clock).

    A time that is not a date never fails the read: the job reads marked ``unreadable``."""
    unreadable: tuple[str, str] | None = None
    completed_at = doc.get("completed_at")
    last_attempt_at = doc.get("last_attempt_at")
    leased_until = doc.get("leased_until")
    # inline: this runs for every document read (PyMongo decodes BSON dates as datetime itself)
    if not (
        type(doc["created_at"]) is datetime
        and type(doc["scheduled_at"]) is datetime
        and (completed_at is None or type(completed_at) is datetime)
        and (last_attempt_at is None or type(last_attempt_at) is datetime)
        and (leased_until is None or type(leased_until) is datetime)
    ):
        doc, unreadable = _unreadable_times(doc)
        completed_at = doc.get("completed_at")
        last_attempt_at = doc.get("last_attempt_at")
        leased_until = doc.get("leased_until")
    outcome = doc.get("outcome")
    succeeded = doc.get("succeeded_by_job_id")
    blocked = bool(doc.get("blocked"))
    scheduled = doc["scheduled_at"]
    if status is None:
        status = derive_status(
            outcome=outcome,
            succeeded_by_job_id=succeeded,
            leased_until=leased_until,
            blocked=blocked,
            scheduled_at=scheduled,
            now=now,
        )
    output = doc.get("output")
    return StoredJob(
        id=str(doc["_id"]),
        type_name=doc["type_name"],
        chain_id=str(doc["chain_id"]),
        chain_type_name=doc["chain_type_name"],
        chain_index=doc["chain_index"],
        input=loads_stored(doc["input"]),
        output=None if output is None else loads_stored(output),
        status=status,
        outcome=outcome,
        created_at=doc["created_at"],
        scheduled_at=scheduled,
        completed_at=completed_at,
        completed_by=doc.get("completed_by"),
        succeeded_by_job_id=_id(succeeded),
        attempt=doc.get("attempt", 0),
        last_attempt_at=last_attempt_at,
        last_attempt_error=doc.get("last_attempt_error"),
        leased_by=doc.get("leased_by"),
        leased_until=leased_until,
        blocked=blocked,
        deduplication_key=doc.get("deduplication_key"),
        chain_trace_context=doc.get("chain_trace_context"),
        trace_context=doc.get("trace_context"),
        priority=doc.get("priority", 0),
        limit_key=doc.get("limit_key"),
        unreadable=unreadable,
    )


def status_expression(now: Any) -> dict[str, Any]:
    """An aggregation expression for a job's derived status at ``now`` (a date or ``"$$NOW"``),
    in the order of :func:`queuert.state.derive_status`."""
    return {
        "$switch": {
            "branches": [
                {
                    "case": {"$ne": [{"$ifNull": ["$outcome", None]}, None]},
                    "then": {
                        "$cond": [
                            {"$ne": [{"$ifNull": ["$succeeded_by_job_id", None]}, None]},
                            "continued",
                            "$outcome",
                        ]
                    },
                },
                {
                    "case": {"$ne": [{"$ifNull": ["$leased_until", None]}, None]},
                    "then": "running",
                },
                {"case": {"$eq": ["$blocked", True]}, "then": "blocked"},
                {"case": {"$gt": ["$scheduled_at", now]}, "then": "scheduled"},
            ],
            "default": "ready",
        }
    }
