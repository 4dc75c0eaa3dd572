"""The resilience tests' progress waits: a stall fails with where the loop's tasks wait."""

from __future__ import annotations

import asyncio

import pytest
from queuert_conformance.resilience import Progress


async def stuck_in_a_lock(lock: asyncio.Lock) -> None:
    async with lock:
        pass


async def test_a_stall_names_the_places_where_the_tasks_wait() -> None:
    progress = Progress()
    lock = asyncio.Lock()
    await lock.acquire()
    waiting = [asyncio.ensure_future(stuck_in_a_lock(lock)) for _ in range(3)]
    try:
        await asyncio.sleep(0)  # each task runs to its wait for the lock
        with pytest.raises(AssertionError) as failure:
            await progress.reached(1, timeout=0.05)
        message = str(failure.value)
        assert "only 0 of 1 attempts completed within 0.05s: processing stalled" in message
        assert "3 x locks.py" in message
        assert "stuck_in_a_lock" in message
    finally:
        lock.release()
        await asyncio.gather(*waiting)
