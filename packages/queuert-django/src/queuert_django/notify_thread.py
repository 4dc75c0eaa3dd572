"""The event loop that publishes the wake-ups of Django's synchronous code through Redis.

:class:`queuert.SyncClient` hands the wake-ups that the database cannot carry in the transaction
(all of them on SQLite; on PostgreSQL too when they go through Redis) to an event loop after the
commit. With ``QUEUERT["NOTIFY"]`` set to a Redis URL, each process runs that loop in a daemon
thread of its own, with the Redis notify adapter on it: started when the process first builds its
sync client for the setting, stopped at interpreter exit once what was handed to it is published
(bounded: ``CLOSE_TIMEOUT``). A process forked after that (a pre-forking server) starts its own.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from queuert.notify import NotifyAdapter

__all__ = ["CLOSE_TIMEOUT", "NotifyThread"]

logger = logging.getLogger("queuert.django")

CLOSE_TIMEOUT = 10.0
"""Seconds the stop at exit may take: publishing what is left, closing the adapter."""


class NotifyThread:
    """A notify adapter open on an event loop in a daemon thread.

    ``opener()`` returns the async context manager that opens and closes the adapter; it runs on
    the thread's loop. :meth:`stop` (also registered with :mod:`atexit`) runs ``before_stop``
    callbacks (the sync clients' ``wait_published``), closes the adapter and ends the thread.
    """

    def __init__(
        self, opener: Callable[[], AbstractAsyncContextManager[NotifyAdapter]], *, name: str
    ) -> None:
        self._opener = opener
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._adapter: NotifyAdapter | None = None
        self._stop: asyncio.Event | None = None
        self.before_stop: list[Callable[[float], None]] = []
        """Called with a timeout before the loop stops (each sync client's ``wait_published``)."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        if not self._ready.wait(CLOSE_TIMEOUT):
            raise TimeoutError("the notify adapter's event loop did not start")
        if self._error is not None:
            raise self._error
        atexit.register(self.stop)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    @property
    def adapter(self) -> NotifyAdapter:
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
        """Publish what was handed over, close the adapter, end the thread (idempotent)."""
        if not self._thread.is_alive():
            return
        for wait_published in self.before_stop:
            try:
                wait_published(CLOSE_TIMEOUT)
            except Exception:
                logger.exception("wake-ups not published before the stop")
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(CLOSE_TIMEOUT)
        atexit.unregister(self.stop)
