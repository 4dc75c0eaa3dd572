"""Draining a set of background tasks that an object owns.

The owner adds each task to a set and removes it with a done callback. When it shuts down it must
wait for every task in the set, including tasks started meanwhile. Waiting until the set is empty is
not enough on its own: a task that has just finished is still in the set until its done callback
runs, and ``asyncio.gather`` of tasks that are all done may return without yielding to the event loop
(it does on Python 3.14), so a loop ``while tasks: await gather(*tasks)`` can spin forever without
ever letting those callbacks run. :func:`drain` removes what it has awaited itself.

A cancellation can be lost on its way through a store's driver: before Python 3.12,
``asyncio.wait_for`` returns a result that arrives together with the cancellation of its caller
(PyMongo's async client awaits its sends and connection checkouts with it). A task that loops then
goes on as if nothing had happened, and awaiting it after one ``cancel()`` waits forever.
:func:`cancel_until_done` cancels again until the task has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = ["cancel_until_done", "drain"]

F = TypeVar("F", bound="asyncio.Future[Any]")

RECANCEL_SECONDS = 0.1
"""How long :func:`cancel_until_done` waits for a cancelled task before cancelling it again."""


async def cancel_until_done(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again each task that is still
    running after :data:`RECANCEL_SECONDS` (its cancellation was lost, see the module). Their results
    and exceptions are retrieved, not looked at."""
    every = list(tasks)
    pending = {task for task in every if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
    for task in every:
        if not task.cancelled():
            task.exception()


async def drain(tasks: set[F], *, cancel: bool = False) -> None:
    """Wait until every task in ``tasks`` has ended (cancelling each first with ``cancel``), also
    those added while waiting; their results and exceptions are not looked at. ``tasks`` ends empty.
    """
    while tasks:
        batch = list(tasks)
        if cancel:
            await cancel_until_done(batch)
        await asyncio.gather(*batch, return_exceptions=True)
        tasks.difference_update(batch)
