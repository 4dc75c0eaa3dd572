"""Opaque keyset cursors, one kind per list, shared by every state adapter.

A cursor is base64url JSON of the last row's sort key, tagged with the list it belongs to, so a cursor
of one list is refused by another. The encoders are used by the page builders of
:mod:`queuert.paging`; an adapter decodes the cursor of its list with the decoder named after it. A
cursor that does not decode, or belongs to another list, raises :class:`~queuert.errors.UsageError`
(:func:`queuert.paging.check_page` does this before an adapter is called).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from queuert.errors import UsageError

__all__ = [
    "decode_blocked_jobs_cursor",
    "decode_chain_jobs_cursor",
    "decode_chains_cursor",
    "decode_jobs_cursor",
    "encode_blocked_jobs_cursor",
    "encode_chain_jobs_cursor",
    "encode_chains_cursor",
    "encode_jobs_cursor",
]

_CHAINS = "c"
_JOBS = "j"
_BLOCKED_JOBS = "b"
_CHAIN_JOBS = "i"


def _encode(payload: dict[str, object]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, kind: str) -> dict[str, object]:
    if not isinstance(cursor, str):
        raise UsageError(f"a cursor is a str, not {cursor!r}")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise UsageError(f"invalid cursor {cursor!r}") from exc
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise UsageError(f"invalid cursor {cursor!r} for this list")
    return payload


def _encode_time(kind: str, created_at: datetime, row_id: str) -> str:
    return _encode({"k": kind, "at": created_at.isoformat(), "id": row_id})


def _decode_time(cursor: str, kind: str) -> tuple[datetime, str]:
    payload = _decode(cursor, kind)
    at, row_id = payload.get("at"), payload.get("id")
    if not isinstance(at, str) or not isinstance(row_id, str):
        raise UsageError(f"invalid cursor {cursor!r}")
    try:
        when = datetime.fromisoformat(at)
    except ValueError as exc:
        raise UsageError(f"invalid cursor {cursor!r}") from exc
    if when.utcoffset() is None:
        raise UsageError(f"invalid cursor {cursor!r}")
    return when, row_id


def encode_chains_cursor(created_at: datetime, chain_id: str) -> str:
    """Cursor of ``list_chains`` after the chain whose first job has these ``created_at`` and id."""
    return _encode_time(_CHAINS, created_at, chain_id)


def decode_chains_cursor(cursor: str) -> tuple[datetime, str]:
    """(``created_at``, id) of the first job of the last chain of the previous page."""
    return _decode_time(cursor, _CHAINS)


def encode_jobs_cursor(created_at: datetime, job_id: str) -> str:
    """Cursor of ``list_jobs`` after the job with these ``created_at`` and id."""
    return _encode_time(_JOBS, created_at, job_id)


def decode_jobs_cursor(cursor: str) -> tuple[datetime, str]:
    """(``created_at``, id) of the last job of the previous page of ``list_jobs``."""
    return _decode_time(cursor, _JOBS)


def encode_blocked_jobs_cursor(created_at: datetime, job_id: str) -> str:
    """Cursor of ``list_blocked_jobs`` after the job with these ``created_at`` and id."""
    return _encode_time(_BLOCKED_JOBS, created_at, job_id)


def decode_blocked_jobs_cursor(cursor: str) -> tuple[datetime, str]:
    """(``created_at``, id) of the last job of the previous page of ``list_blocked_jobs``."""
    return _decode_time(cursor, _BLOCKED_JOBS)


def encode_chain_jobs_cursor(chain_index: int) -> str:
    """Cursor of ``list_chain_jobs`` after the job at ``chain_index``."""
    return _encode({"k": _CHAIN_JOBS, "i": chain_index})


def decode_chain_jobs_cursor(cursor: str) -> int:
    """The ``chain_index`` of the last job of the previous page of ``list_chain_jobs``."""
    payload = _decode(cursor, _CHAIN_JOBS)
    index = payload.get("i")
    if not isinstance(index, int) or isinstance(index, bool):
        raise UsageError(f"invalid cursor {cursor!r}")
    return index
