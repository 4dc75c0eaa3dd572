"""Job ids: the id policy of a state adapter, and time-ordered UUIDs (version 7), the default one.

Which strings are job ids is the state adapter's decision (a column type, a document key), declared
as its :class:`IdPolicy` (``StateAdapter.ids``). The core enforces it: the client generates new ids
with the policy and checks every id a caller gives it with :func:`check_id` / :func:`check_ids` before
it touches the store, so an adapter only ever receives ids its policy accepts.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from queuert.errors import InvalidJobIdError, UsageError

__all__ = ["UUID_IDS", "IdPolicy", "check_id", "check_ids", "is_uuid", "uuid7", "uuid7_many"]

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
    # variant bits 10, then 62 random bits: 16 hex digits, split once
    tail = f"{_VARIANT | _getrandbits(62):x}"
    return f"{prefix}{counter:03x}-{tail[:4]}-{tail[4:]}"


_VARIANT = 1 << 63


def uuid7_many(count: int) -> list[str]:
    """``count`` new ids of :func:`uuid7`, in increasing order, made under one lock: what a batch of
    new jobs asks for (a call per id costs as much again)."""
    global _last_ms, _counter, _prefix
    # runs of ids that share a millisecond prefix: (prefix, first counter, counter past the last)
    runs: list[tuple[str, int, int]] = []
    with _lock:
        ms = _time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = _getrandbits(10) - 1  # counted up to the new millisecond's first below
            _prefix = _millisecond_prefix(ms)
        left = count
        while left > 0:
            room = 0xFFF - _counter
            if room <= 0:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = -1
                _prefix = _millisecond_prefix(_last_ms)
                room = 0x1000
            taken = min(left, room)
            runs.append((_prefix, _counter + 1, _counter + 1 + taken))
            _counter += taken
            left -= taken
    # each id's 62 random bits from one draw for the batch: 16 hex digits per id, the first of
    # which keeps its two low bits under the variant bits 10 (8, 9, a or b)
    digits = f"{_getrandbits(64 * count):0{16 * count}x}"
    variants = digits[::16].translate(_VARIANT_DIGITS)
    ids: list[str] = []
    append = ids.append
    at = 0
    for prefix, first, past in runs:
        for counter in range(first, past):
            start = at * 16
            append(
                f"{prefix}{counter:03x}-{variants[at]}{digits[start + 1 : start + 4]}"
                f"-{digits[start + 4 : start + 16]}"
            )
            at += 1
    return ids


_VARIANT_DIGITS = str.maketrans("0123456789abcdef", "89ab89ab89ab89ab")
"""A random hex digit as the first digit of the variant field: its two low bits under the bits
``10``."""


def _millisecond_prefix(ms: int) -> str:
    ms &= 0xFFFF_FFFF_FFFF
    return f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7"


_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_uuid(value: object) -> bool:
    """True for a canonical lower-case hyphenated UUID string."""
    return isinstance(value, str) and _CANONICAL.fullmatch(value) is not None


@dataclass(frozen=True)
class IdPolicy:
    """Which strings a state adapter takes as job ids, and how new ones are made.

    ``generate()`` returns a new id that no stored job has; ``is_valid(value)`` is True for exactly the
    strings the store can hold as an id (it is given strings only). ``describe`` completes "expected
    ..." in error messages.

    Ids made by one process must increase (as strings) in the order they are made: where two jobs
    have the same time, claims and deduplication order them by id, so first in, first out within a
    batch or a transaction relies on it (UUIDv7 and ObjectIds do).
    """

    name: str
    generate: Callable[[], str]
    is_valid: Callable[[str], bool]
    describe: str
    generate_many: Callable[[int], list[str]] | None = None
    """Optional: ``count`` new ids at once, as ``count`` calls of ``generate`` would make them (in
    increasing order), for batches; without it the client calls ``generate`` per id."""


UUID_IDS = IdPolicy(
    name="uuid",
    generate=uuid7,
    is_valid=is_uuid,
    describe="a canonical lower-case hyphenated UUID",
    generate_many=uuid7_many,
)
"""UUIDv7 ids made by :func:`uuid7`; any canonical lower-case UUID is accepted from callers."""


def check_id(policy: IdPolicy, value: object, *, argument: str = "job id") -> str:
    """``value`` if ``policy`` accepts it as an id, else :class:`~queuert.errors.InvalidJobIdError`
    naming ``argument`` (the parameter it came from)."""
    if type(value) is not str or not policy.is_valid(value):
        raise InvalidJobIdError(value, "caller", expected=policy.describe, argument=argument)
    return value


def check_ids(policy: IdPolicy, values: Iterable[str], *, argument: str) -> tuple[str, ...]:
    """Every id of ``values`` checked with :func:`check_id` (``argument[i]`` names a bad one), as a
    tuple. A plain string is refused with :class:`~queuert.errors.UsageError`: it is a sequence of
    characters, never meant as one."""
    if isinstance(values, (str, bytes)):
        raise UsageError(
            f"{argument} must be a sequence of ids, not a single {type(values).__name__}"
        )
    checked = tuple(values)
    is_valid = policy.is_valid
    for i, value in enumerate(checked):
        if type(value) is not str or not is_valid(value):
            raise InvalidJobIdError(
                value, "caller", expected=policy.describe, argument=f"{argument}[{i}]"
            )
    return checked
