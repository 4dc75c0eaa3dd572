"""A notify adapter on an event loop of its own, in a daemon thread, for synchronous callers.

:class:`queuert.SyncClient` hands the wake-ups that the database cannot carry in the transaction to an
event loop after the commit (``SyncClient(..., notify=..., notify_loop=...)``). A synchronous program
with no event loop of its own (a WSGI application, a script) runs one here::

    thread = NotifyThread(lambda: RedisNotifyAdapter.connect(url))
    sync = SyncClient(backend, job_types=[...], notify=thread.adapter, notify_loop=thread.loop)
    thread.before_stop.append(sync.wait_published)
    ...
    thread.stop()  # publishes what was handed over, closes the adapter, ends the thread

It is also a context manager (``with NotifyThread(...) as thread:``, stopped on exit).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Generic, TypeVar

from queuert.notify import NotifyAdapter

__all__ = ["NotifyThread"]

logger = logging.getLogger("queuert.notify_thread")

N = TypeVar("N", bound=NotifyAdapter)


class NotifyThread(Generic[N]):
    """A notify adapter open on an event loop in a daemon thread, started by the constructor.

    ``opener()`` returns the async context manager that opens and closes the adapter; it runs on
    the thread's loop, and an error it raises is raised by the constructor. :meth:`stop` runs the
    ``before_stop`` callbacks (each given ``timeout``: the sync clients' ``wait_published``), closes
    the adapter and ends the thread; every wait is bounded by ``timeout`` seconds.
    """

    def __init__(
        self,
        opener: Callable[[], AbstractAsyncContextManager[N]],
        *,
        name: str = "queuert-notify",
        timeout: float = 10.0,
    ) -> None:
        self._opener = opener
        self.timeout = timeout
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._adapter: N | None = None
        self._stop: asyncio.Event | None = None
        self.before_stop: list[Callable[[float], None]] = []
        """Called with ``timeout`` before the loop stops (each sync client's ``wait_published``)."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the notify adapter's event loop did not start")
        if self._error is not None:
            raise self._error

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    @property
    def adapter(self) -> N:
        assert self._adapter is not None
        return self._adapter

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # reported to the thread that started this one
            if not self._ready.is_set():
                self._error = error
                self._ready.set()
            else:
                logger.exception("the notify adapter's event loop failed")

    async def _main(self) -> None:
        async with self._opener() as adapter:
            self._stop = asyncio.Event()
            self._loop, self._adapter = asyncio.get_running_loop(), adapter
            self._ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        """Publish what was handed over, close the adapter, end the thread (idempotent). Raises
        ``TimeoutError`` if the thread has not ended within ``timeout``."""
        if not self._thread.is_alive():
            return
        for wait_published in self.before_stop:
            try:
                wait_published(self.timeout)
            except Exception:
                logger.exception("wake-ups not published before the stop")
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(self.timeout)
        if self._thread.is_alive():
            raise TimeoutError("the notify adapter's event loop did not stop")

    def __enter__(self) -> NotifyThread[N]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
