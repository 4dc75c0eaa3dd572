"""Job ids: time-ordered UUIDs (version 7) by default."""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["is_uuid", "uuid7"]

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> str:
    """A new RFC 9562 UUIDv7 as a string: 48-bit Unix milliseconds, then a counter and random bits.

    Ids made by one process are strictly increasing (a 12-bit counter in ``rand_a`` orders ids made in
    the same millisecond), so ordering by id within a process follows creation order.
    """
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        counter = _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand_b
    return str(uuid.UUID(int=value))


def is_uuid(value: object) -> bool:
    """True for a canonical lower-case hyphenated UUID string."""
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
