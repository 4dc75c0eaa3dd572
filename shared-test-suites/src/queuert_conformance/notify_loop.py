"""A notify adapter on an event loop of its own thread, for tests of :class:`queuert.SyncClient`.

A synchronous caller hands the wake-ups that its database cannot carry in the transaction to the
event loop of an in-process worker (``SyncClient(..., notify=..., notify_loop=...)``). This stands
in for that worker's loop: an :class:`~queuert.InProcessNotifyAdapter` running in a thread, which
records the job-scheduled messages it receives::

    with NotifyLoopThread(["ship_order"]) as wake:
        sync = SyncClient(backend, job_types=[ShipOrder], notify=wake.notify, notify_loop=wake.loop)
        ...
        sync.wait_published()  # what was handed over so far is published, hence received
        assert wake.received() == ["ship_order"]

The in-process adapter calls its listeners while it publishes, so once ``sync.wait_published()``
returns, every wake-up handed to the loop so far is in :meth:`NotifyLoopThread.received`.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType

from queuert import InProcessNotifyAdapter
from queuert.notify_thread import NotifyThread

__all__ = ["NotifyLoopThread"]


class NotifyLoopThread:
    """An :class:`~queuert.InProcessNotifyAdapter` listening for job-scheduled messages of
    ``type_names`` on the event loop of a :class:`queuert.notify_thread.NotifyThread`; a context
    manager (it starts and stops both)."""

    def __init__(self, type_names: Sequence[str], *, timeout: float = 20.0) -> None:
        self._type_names = list(type_names)
        self._timeout = timeout
        self._woken: queue.Queue[str] = queue.Queue()
        self._thread: NotifyThread[InProcessNotifyAdapter] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._thread is not None, "enter the NotifyLoopThread first"
        return self._thread.loop

    @property
    def notify(self) -> InProcessNotifyAdapter:
        assert self._thread is not None, "enter the NotifyLoopThread first"
        return self._thread.adapter

    @asynccontextmanager
    async def _listening(self) -> AsyncIterator[InProcessNotifyAdapter]:
        async with InProcessNotifyAdapter() as notify:
            await notify.listen_job_scheduled(self._type_names, self._woken.put)
            yield notify

    def received(self) -> list[str]:
        """The type names of the job-scheduled messages received since the last call."""
        names: list[str] = []
        while True:
            try:
                names.append(self._woken.get_nowait())
            except queue.Empty:
                return names

    def __enter__(self) -> NotifyLoopThread:
        self._thread = NotifyThread(
            self._listening, name="queuert-test-notify", timeout=self._timeout
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._thread is not None
        self._thread.stop()
