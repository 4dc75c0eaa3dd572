"""How the sync client runs the adapters' coroutines: to their end on the calling thread, refusing
one that waits for an event loop and refusing to block a thread that runs one."""

from __future__ import annotations

import asyncio

import pytest
from queuert import SyncCallInEventLoopError, SyncCallSuspendedError
from queuert._inline import check_no_running_loop, run_inline


async def answer() -> int:
    return 42


async def nested() -> int:
    return await answer() + 1


def test_a_coroutine_that_never_waits_runs_to_its_result() -> None:
    assert run_inline(nested()) == 43


def test_an_error_of_the_coroutine_reaches_the_caller() -> None:
    async def failing() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        run_inline(failing())


def test_a_coroutine_that_waits_is_refused_and_closed() -> None:
    cleaned: list[str] = []

    async def waits() -> None:
        try:
            await asyncio.sleep(0)
        finally:
            cleaned.append("finally ran")

    with pytest.raises(SyncCallSuspendedError, match="waits"):
        run_inline(waits())
    assert cleaned == ["finally ran"]


def test_blocking_calls_are_refused_on_a_thread_running_an_event_loop() -> None:
    check_no_running_loop()

    async def inside() -> None:
        check_no_running_loop()

    with pytest.raises(SyncCallInEventLoopError):
        asyncio.run(inside())
