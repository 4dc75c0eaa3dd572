"""Wake-hint budgets in a JetStream key-value bucket, updated with compare-and-set."""

from __future__ import annotations

import base64

from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

__all__ = ["MAX_CAS_ATTEMPTS", "consume", "hint_key", "provide"]

MAX_CAS_ATTEMPTS = 32
"""A consumer only loses a race to a successful decrement or top-up, so within a budget of a few dozen
units this bound is never reached; past it, ``consume`` wakes (True) and ``provide`` gives up."""


def hint_key(prefix: str, type_name: str) -> str:
    """``{prefix}.hint.{type name as unpadded base64url}``: any type name becomes a valid key."""
    encoded = base64.urlsafe_b64encode(type_name.encode()).decode().rstrip("=")
    return f"{prefix}.hint.{encoded or '_'}"


def _budget(value: bytes | None) -> int:
    try:
        return int(value or b"0")
    except ValueError:
        return 0


async def provide(kv: KeyValue, key: str, count: int) -> bool:
    """Adds ``count`` to the budget; False if every attempt lost a race."""
    for _ in range(MAX_CAS_ATTEMPTS):
        try:
            entry = await kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            try:
                await kv.create(key, str(count).encode())
            except KeyWrongLastSequenceError:
                continue
            return True
        try:
            await kv.update(key, str(_budget(entry.value) + count).encode(), last=entry.revision)
        except KeyWrongLastSequenceError:
            continue
        return True
    return False


async def consume(kv: KeyValue, key: str) -> bool:
    """Takes one unit: True if taken or if no budget exists, False if the budget is exhausted."""
    for _ in range(MAX_CAS_ATTEMPTS):
        try:
            entry = await kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return True
        budget = _budget(entry.value)
        if budget <= 0:
            return False
        try:
            await kv.update(key, str(budget - 1).encode(), last=entry.revision)
        except KeyWrongLastSequenceError:
            continue
        return True
    return True
