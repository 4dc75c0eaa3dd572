"""Awaiting with a time limit without ever losing a cancellation (for adapters' network calls).

``asyncio.wait_for`` before Python 3.12 can return the awaited result when its caller is cancelled
just as that result arrives: the cancellation is swallowed, and a worker that is shutting down goes
on as if nothing had happened. :func:`bounded` runs the awaitable as a task of its own and waits for
it with ``asyncio.wait``: a cancellation of the caller always reaches the task and always propagates.
When the time runs out, or the caller is cancelled, the task is cancelled, the caller's clean-up runs
(closing a connection whose state is now unknown, say), and the task is awaited for a short grace so
that it never outlives the call unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["bounded"]

T = TypeVar("T")

Abandon = Callable[[], "Awaitable[Any] | None"]
"""Clean-up after the work was given up: a function, or a coroutine function (itself bounded)."""

_GRACE = 1.0
"""Seconds a given-up task and its clean-up get to end."""


async def bounded(
    work: Awaitable[T],
    seconds: float | None,
    *,
    what: str = "the operation",
    on_timeout: Abandon | None = None,
    on_cancel: Abandon | None = None,
    discard: Callable[[T], object] | None = None,
) -> T:
    """``await work``, given up after ``seconds`` (``None``: no limit) with ``asyncio.TimeoutError``
    (``"<what> got no answer within <seconds> s"``). ``on_timeout`` runs after a timeout and
    ``on_cancel`` after a cancellation of the caller, once the work's task is cancelled; both then
    re-raise. ``discard`` gets a result that arrives after the call gave up (the work finished as
    it was being cancelled): a connection taken from a pool must go back, or closing the pool
    would wait for it forever."""
    if seconds is None:
        return await work
    task = asyncio.ensure_future(work)
    task.add_done_callback(_retrieve)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        await _abandon(task, on_cancel, discard)
        raise
    if not done:
        await _abandon(task, on_timeout, discard)
        raise asyncio.TimeoutError(f"{what} got no answer within {seconds:g} s")
    return task.result()


async def _abandon(
    task: asyncio.Future[T], cleanup: Abandon | None, discard: Callable[[T], object] | None
) -> None:
    if discard is not None:
        task.add_done_callback(functools.partial(_discard, discard))
    task.cancel()
    if cleanup is not None:
        try:
            result = cleanup()
            if inspect.isawaitable(result):
                ending = asyncio.ensure_future(result)
                ending.add_done_callback(_retrieve)
                done, _ = await asyncio.wait({ending}, timeout=_GRACE)
                if not done:
                    ending.cancel()
        except Exception:  # the clean-up of work already given up: nothing more to do
            pass
    await asyncio.wait({task}, timeout=_GRACE)


def _discard(discard: Callable[[T], object], task: asyncio.Future[T]) -> None:
    """Hand ``discard`` what the given-up work produced after all, if it produced anything."""
    if not task.cancelled() and task.exception() is None:
        with contextlib.suppress(Exception):  # nothing more can be done with it
            discard(task.result())


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark the outcome of the work as seen (it may end after its caller gave up)."""
    if not task.cancelled():
        task.exception()
