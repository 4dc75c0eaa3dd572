"""``queuert._tasks.drain``: how the worker and the client wait for the background tasks they own
when they close."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from queuert._tasks import drain


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail instead of hanging: a loop that never yields to the event loop cannot be timed out by
    asyncio, but a signal handler still runs between its bytecodes."""

    def fire(_signum: int, _frame: FrameType | None) -> None:
        raise TimeoutError("drain did not return (spinning without yielding to the event loop?)")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


async def test_a_finished_task_whose_callback_has_not_run_yet_does_not_spin() -> None:
    """The shape that hung ``Worker.close()`` on Python 3.14: a task finished, but the done callback
    that removes it from the set has not run yet (it is scheduled for the next loop turn), and
    ``gather`` of finished tasks returns there without yielding."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Future[Any]] = set()
    finished = loop.create_future()
    tasks.add(finished)
    finished.add_done_callback(tasks.discard)
    finished.set_result(None)  # its discard is now scheduled, not run
    assert finished in tasks
    with deadline(5):
        await drain(tasks)
    assert not tasks


async def test_tasks_started_while_draining_are_awaited_too() -> None:
    tasks: set[asyncio.Future[Any]] = set()
    ended: list[str] = []

    def spawn(name: str, then: str | None = None) -> None:
        async def run() -> None:
            await asyncio.sleep(0.01)
            ended.append(name)
            if then is not None:
                spawn(then)

        task = asyncio.ensure_future(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    spawn("first", then="second")
    with deadline(5):
        await drain(tasks)
    assert ended == ["first", "second"] and not tasks


async def test_with_cancel_every_task_is_cancelled_and_awaited() -> None:
    tasks: set[asyncio.Future[Any]] = set()
    cleaned: list[int] = []

    async def forever(n: int) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(n)

    started = [asyncio.ensure_future(forever(n)) for n in range(3)]
    tasks.update(started)
    await asyncio.sleep(0)
    with deadline(5):
        await drain(tasks, cancel=True)
    assert sorted(cleaned) == [0, 1, 2]
    assert all(task.cancelled() for task in started) and not tasks


async def test_failures_are_not_raised() -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    task = asyncio.ensure_future(fail())
    tasks: set[asyncio.Future[Any]] = {task}
    with deadline(5):
        await drain(tasks)
    assert isinstance(task.exception(), RuntimeError) and not tasks
