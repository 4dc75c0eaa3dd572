"""NotifyThread: a notify adapter on an event loop of its own thread, for synchronous callers."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from queuert import InProcessNotifyAdapter
from queuert.notify_thread import NotifyThread


def test_the_adapter_runs_on_the_thread_s_loop_and_stop_closes_it() -> None:
    woken: queue.Queue[str] = queue.Queue()
    stops: list[float] = []
    with NotifyThread(InProcessNotifyAdapter, timeout=5) as thread:
        asyncio.run_coroutine_threadsafe(
            thread.adapter.listen_job_scheduled(["mail"], woken.put), thread.loop
        ).result(5)
        asyncio.run_coroutine_threadsafe(
            thread.adapter.notify_job_scheduled("mail"), thread.loop
        ).result(5)
        assert woken.get(timeout=5) == "mail"
        thread.before_stop.append(stops.append)
    assert stops == [5], "the callbacks ran before the stop, given the timeout"
    assert thread.loop.is_closed()
    thread.stop()  # again: nothing to do


def test_an_adapter_that_fails_to_open_fails_the_constructor() -> None:
    @asynccontextmanager
    async def refused() -> AsyncIterator[InProcessNotifyAdapter]:
        raise ConnectionRefusedError("no server")
        yield InProcessNotifyAdapter()  # pragma: no cover

    with pytest.raises(ConnectionRefusedError, match="no server"):
        NotifyThread(refused, timeout=5)
