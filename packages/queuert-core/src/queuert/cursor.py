"""Opaque keyset cursors shared by every state adapter.

A cursor is base64url JSON of the last row's sort key. Adapters encode the last returned row and decode
the caller's cursor; a cursor that does not decode raises :class:`~queuert.errors.UsageError`.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from queuert.errors import UsageError

__all__ = ["decode_index_cursor", "decode_time_cursor", "encode_index_cursor", "encode_time_cursor"]


def _encode(payload: dict[str, object]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, kind: str) -> dict[str, object]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"invalid cursor {cursor!r}") from exc
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise UsageError(f"invalid cursor {cursor!r} for this list")
    return payload


def encode_time_cursor(created_at: datetime, row_id: str) -> str:
    """Cursor after a row ordered by (``created_at``, ``id``)."""
    return _encode({"k": "t", "at": created_at.isoformat(), "id": row_id})


def decode_time_cursor(cursor: str) -> tuple[datetime, str]:
    payload = _decode(cursor, "t")
    at, row_id = payload.get("at"), payload.get("id")
    if not isinstance(at, str) or not isinstance(row_id, str):
        raise UsageError(f"invalid cursor {cursor!r}")
    try:
        when = datetime.fromisoformat(at)
    except ValueError as exc:
        raise UsageError(f"invalid cursor {cursor!r}") from exc
    if when.tzinfo is None:
        raise UsageError(f"invalid cursor {cursor!r}")
    return when, row_id


def encode_index_cursor(chain_index: int) -> str:
    """Cursor after a job of a chain ordered by ``chain_index``."""
    return _encode({"k": "i", "i": chain_index})


def decode_index_cursor(cursor: str) -> int:
    payload = _decode(cursor, "i")
    index = payload.get("i")
    if not isinstance(index, int) or isinstance(index, bool):
        raise UsageError(f"invalid cursor {cursor!r}")
    return index
