"""Job ids: time-ordered UUIDs (version 7) by default."""

from __future__ import annotations

import random
import re
import threading
import time

__all__ = ["is_uuid", "uuid7"]

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_prefix = ""  # the id's text up to the counter: the 48-bit millisecond and the version digit
_getrandbits = random.getrandbits
_time_ns = time.time_ns


def uuid7() -> str:
    """A new RFC 9562 UUIDv7 as a string: 48-bit Unix milliseconds, then a counter and random bits.

    Ids made by one process are strictly increasing (a 12-bit counter in ``rand_a`` orders ids made in
    the same millisecond), so ordering by id within a process follows creation order. The random bits
    come from :mod:`random`, which Python reseeds in a forked child, so forked workers do not repeat
    each other's sequences.
    """
    global _last_ms, _counter, _prefix
    with _lock:
        ms = _time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = _getrandbits(10)  # leave room to count up within the millisecond
            _prefix = _millisecond_prefix(ms)
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
                _prefix = _millisecond_prefix(_last_ms)
        prefix = _prefix
        counter = _counter
    rand = _getrandbits(62)
    # variant bits 10, then 62 random bits
    return f"{prefix}{counter:03x}-{0x8000 | (rand >> 48):04x}-{rand & 0xFFFF_FFFF_FFFF:012x}"


def _millisecond_prefix(ms: int) -> str:
    ms &= 0xFFFF_FFFF_FFFF
    return f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7"


_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_uuid(value: object) -> bool:
    """True for a canonical lower-case hyphenated UUID string."""
    return isinstance(value, str) and _CANONICAL.fullmatch(value) is not None
