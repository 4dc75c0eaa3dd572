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
import threading
from collections.abc import Sequence
from types import TracebackType

from queuert import InProcessNotifyAdapter

__all__ = ["NotifyLoopThread"]


class NotifyLoopThread:
    """An :class:`~queuert.InProcessNotifyAdapter` listening for job-scheduled messages of
    ``type_names`` on an event loop in a thread; a context manager (it starts and stops both)."""

    def __init__(self, type_names: Sequence[str], *, timeout: float = 20.0) -> None:
        self._type_names = list(type_names)
        self._timeout = timeout
        self._woken: queue.Queue[str] = queue.Queue()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._notify: InProcessNotifyAdapter | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "enter the NotifyLoopThread first"
        return self._loop

    @property
    def notify(self) -> InProcessNotifyAdapter:
        assert self._notify is not None, "enter the NotifyLoopThread first"
        return self._notify

    async def _main(self) -> None:
        try:
            async with InProcessNotifyAdapter() as notify:
                await notify.listen_job_scheduled(self._type_names, self._woken.put)
                self._stop = asyncio.Event()
                self._loop, self._notify = asyncio.get_running_loop(), notify
                self._ready.set()
                await self._stop.wait()
        except BaseException as error:
            self._error = error
            self._ready.set()
            raise

    def received(self) -> list[str]:
        """The type names of the job-scheduled messages received since the last call."""
        names: list[str] = []
        while True:
            try:
                names.append(self._woken.get_nowait())
            except queue.Empty:
                return names

    def __enter__(self) -> NotifyLoopThread:
        self._thread.start()
        assert self._ready.wait(self._timeout), "the notify loop did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self._timeout)
        assert not self._thread.is_alive(), "the notify loop did not stop"
