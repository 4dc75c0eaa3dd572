"""The worker's wake-up (``queuert.worker._Wake``): its main loop sleeps on it for at most a delay,
and a freed slot, a notification or the stop sets it."""

from __future__ import annotations

import asyncio

import pytest
from queuert.worker import _Wake


async def test_a_wake_up_set_before_the_sleep_ends_it_at_once() -> None:
    wake = _Wake()
    wake.set()
    assert wake.is_set()
    await asyncio.wait_for(wake.wait(3600), timeout=5)
    wake.clear()
    assert not wake.is_set()


async def test_a_wake_up_set_during_the_sleep_ends_it() -> None:
    wake = _Wake()
    sleeping = asyncio.ensure_future(wake.wait(3600))
    await asyncio.sleep(0)
    assert not sleeping.done()
    wake.set()
    await asyncio.wait_for(sleeping, timeout=5)


async def test_without_a_wake_up_the_sleep_ends_after_its_delay() -> None:
    wake = _Wake()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(wake.wait(0.05), timeout=5)
    assert loop.time() - started >= 0.04
    assert not wake.is_set()


async def test_a_cancelled_sleep_leaves_no_timer_and_a_later_set_is_kept() -> None:
    wake = _Wake()
    loop = asyncio.get_running_loop()
    sleeping = asyncio.ensure_future(wake.wait(3600))
    await asyncio.sleep(0)
    timers = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    sleeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeping
    after = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    assert len(after) == len(timers) - 1
    wake.set()  # nobody sleeps: remembered for the next sleep
    await asyncio.wait_for(wake.wait(3600), timeout=5)


async def test_a_set_taken_back_by_clear_does_not_end_the_next_sleep() -> None:
    wake = _Wake()
    await wake.wait(0.01)
    wake.set()
    wake.clear()
    sleeping = asyncio.ensure_future(wake.wait(3600))
    await asyncio.sleep(0)
    assert not sleeping.done()
    wake.set()
    await asyncio.wait_for(sleeping, timeout=5)
