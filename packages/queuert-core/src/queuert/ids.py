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


def uuid7() -> str:
    """A new RFC 9562 UUIDv7 as a string: 48-bit Unix milliseconds, then a counter and random bits.

    Ids made by one process are strictly increasing (a 12-bit counter in ``rand_a`` orders ids made in
    the same millisecond), so ordering by id within a process follows creation order. The random bits
    come from :mod:`random`, which Python reseeds in a forked child, so forked workers do not repeat
    each other's sequences.
    """
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = random.getrandbits(10)  # leave room to count up within the millisecond
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        counter = _counter
    value = ((ms & 0xFFFF_FFFF_FFFF) << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62)
    h = f"{value | random.getrandbits(62):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_uuid(value: object) -> bool:
    """True for a canonical lower-case hyphenated UUID string."""
    return isinstance(value, str) and _CANONICAL.fullmatch(value) is not None
