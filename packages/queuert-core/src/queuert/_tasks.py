"""Draining a set of background tasks that an object owns.

The owner adds each task to a set and removes it with a done callback. When it shuts down it must
wait for every task in the set, including tasks started meanwhile. Waiting until the set is empty is
not enough on its own: a task that has just finished is still in the set until its done callback
runs, and ``asyncio.gather`` of tasks that are all done may return without yielding to the event loop
(it does on Python 3.14), so a loop ``while tasks: await gather(*tasks)`` can spin forever without
ever letting those callbacks run. :func:`drain` removes what it has awaited itself.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

__all__ = ["drain"]

F = TypeVar("F", bound="asyncio.Future[Any]")


async def drain(tasks: set[F], *, cancel: bool = False) -> None:
    """Wait until every task in ``tasks`` has ended (cancelling each first with ``cancel``), also
    those added while waiting; their results and exceptions are not looked at. ``tasks`` ends empty.
    """
    while tasks:
        batch = list(tasks)
        if cancel:
            for task in batch:
                task.cancel()
        await asyncio.gather(*batch, return_exceptions=True)
        tasks.difference_update(batch)
