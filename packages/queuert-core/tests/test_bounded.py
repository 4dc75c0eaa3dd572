"""``queuert.bounded.bounded``: a time limit that never swallows a cancellation."""

from __future__ import annotations

import asyncio

import pytest
from queuert.bounded import Deadlines, bounded


async def test_the_result_comes_back_within_the_limit() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert await bounded(answer(), 5.0) == 42
    assert await bounded(answer(), None) == 42


async def test_a_timeout_cancels_the_work_runs_the_clean_up_and_raises() -> None:
    never = asyncio.Event()
    cancelled = asyncio.Event()
    cleaned: list[str] = []

    async def hang() -> None:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def clean() -> None:
        cleaned.append("timeout")

    with pytest.raises(asyncio.TimeoutError, match=r"a statement got no answer within 0\.05 s"):
        await bounded(hang(), 0.05, what="a statement", on_timeout=clean)
    assert cancelled.is_set(), "the given-up work was not cancelled"
    assert cleaned == ["timeout"]


async def test_a_cancelled_caller_is_cancelled_even_as_the_work_ends() -> None:
    """The case ``asyncio.wait_for`` gets wrong before Python 3.12: the work's result arrives in the
    same loop iteration as the caller's cancellation, and the cancellation must still win."""
    release = asyncio.Event()
    cleaned: list[str] = []

    async def work() -> str:
        await release.wait()
        return "done"

    async def caller() -> str:
        return await bounded(work(), 5.0, on_cancel=lambda: cleaned.append("cancel"))

    task = asyncio.ensure_future(caller())
    await asyncio.sleep(0)  # the caller is now waiting on the work
    release.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["cancel"]


async def test_an_error_of_the_work_propagates_untouched() -> None:
    async def fail() -> None:
        raise LookupError("boom")

    with pytest.raises(LookupError, match="boom"):
        await bounded(fail(), 5.0, on_timeout=lambda: pytest.fail("no timeout happened"))


async def test_a_result_that_arrives_after_the_caller_gave_up_is_discarded() -> None:
    """A connection taken from a pool as its caller is cancelled must go back to the pool: the
    call hands it to ``discard`` instead of dropping it (closing the pool would wait for it)."""
    release = asyncio.Event()
    discarded: list[str] = []

    async def take_a_connection() -> str:
        await release.wait()
        return "connection"

    async def caller() -> str:
        return await bounded(take_a_connection(), 5.0, discard=discarded.append)

    task = asyncio.ensure_future(caller())
    await asyncio.sleep(0)  # the caller is now waiting on the work
    release.set()  # the work finishes in the same loop iteration as the cancellation
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(3):  # the done callbacks run on the next iterations
        await asyncio.sleep(0)
    assert discarded == ["connection"]


async def test_an_await_is_aborted_at_its_deadline_after_an_earlier_one_ended() -> None:
    """The timer armed for the first await's deadline outlives its removal: it fires, finds the
    second await not yet due, and waits on for it."""
    deadlines = Deadlines(0.05)
    loop = asyncio.get_running_loop()
    aborted: asyncio.Future[str] = loop.create_future()
    first: list[bool] = []
    second: list[bool] = []
    started = loop.time()
    assert deadlines.add(loop, 1, lambda: aborted.set_result("first"), first)
    assert deadlines.add(loop, 2, lambda: aborted.set_result("second"), second)
    deadlines.remove(1)
    assert await asyncio.wait_for(aborted, 5) == "second"
    assert second == [True] and first == []
    assert loop.time() - started >= 0.05
