"""Running an adapter's coroutine to its end on the calling thread, without an event loop.

The state adapters are written once, as async code. Over a synchronous connection (the caller's
``sqlite3`` or psycopg connection) their operations never wait for anything: every ``await`` reaches a
provider method that does its work and returns. Such a coroutine finishes on its first ``send(None)``;
that is how :class:`~queuert.SyncClient` calls the very same adapter code from synchronous code. A
coroutine that does yield (it waits for a future the loop would resolve) is closed and refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from queuert.errors import SyncCallInEventLoopError, SyncCallSuspendedError

__all__ = ["check_no_running_loop", "run_inline"]

T = TypeVar("T")


def check_no_running_loop() -> None:
    """Refuse to block a thread that runs an event loop (:class:`SyncCallInEventLoopError`)."""
    if asyncio._get_running_loop() is not None:
        raise SyncCallInEventLoopError()


def run_inline(awaitable: Awaitable[T]) -> T:
    """The result of ``awaitable`` (a coroutine), which must complete without suspending (else
    :class:`SyncCallSuspendedError`; the coroutine is closed, so its ``finally`` blocks run)."""
    steps = awaitable.__await__()
    try:
        steps.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    close = getattr(steps, "close", None)
    if close is not None:
        close()
    raise SyncCallSuspendedError(getattr(awaitable, "__qualname__", repr(awaitable)))
