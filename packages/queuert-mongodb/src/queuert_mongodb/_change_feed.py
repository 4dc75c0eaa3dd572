"""One change stream on the notify collection, kept open by a supervisor task.

The supervisor opens the stream, hands every inserted message to ``on_message`` and remembers the
stream's resume token (the last event's, or the server's post-batch token while nothing happens).
When the stream fails (a server restart, a dropped connection, a killed cursor, a silent server
found by the per-read timeout), it reopens the stream *after that token*, so messages written
meanwhile are still delivered; when the token cannot be used any more (history rolled off the
oplog, the collection dropped and the stream invalidated), it opens a fresh stream. Either way
``on_down`` runs when the stream is lost and ``on_up`` each time it is live again, so the adapter
can give its listeners their catch-up call.

PyMongo itself resumes a change stream once after a resumable error; the supervisor notices that
(the driver then runs on a new cursor) and treats it as a drop and a reconnect as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

import pymongo
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

__all__ = ["ChangeFeed", "unreachable"]

logger = logging.getLogger("queuert.mongodb.notify")

_PIPELINE: list[dict[str, Any]] = [{"$match": {"operationType": "insert"}}]


def unreachable(error: BaseException) -> bool:
    """A network error or a timeout: the server may come back (anything else is a real error)."""
    return isinstance(error, ConnectionFailure) or bool(getattr(error, "timeout", False))


class ChangeFeed:
    """Keeps a change stream of inserts on ``collection`` open (see the module)."""

    def __init__(
        self,
        collection: Any,
        *,
        on_message: Callable[[Mapping[str, Any]], None],
        on_down: Callable[[], None],
        on_up: Callable[[], None],
        prepare: Callable[[], Any],
        open_timeout: float,
        max_await: float,
        reconnect_delay: float,
        max_reconnect_delay: float,
    ) -> None:
        self._collection = collection
        self._on_message = on_message
        self._on_down = on_down
        self._on_up = on_up
        self._prepare = prepare
        self._open_timeout = open_timeout
        self._max_await_ms = max(1, int(max_await * 1000))
        self._read_timeout = max_await + open_timeout
        self._initial_delay = reconnect_delay
        self._max_delay = max_reconnect_delay
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[bool] | None = None
        self._stream: Any = None
        self.token: Mapping[str, Any] | None = None
        """The resume token the stream would be reopened after (diagnostics and tests)."""
        self.reconnects = 0
        """How many times the stream came back after a drop (or up, late, after the server was
        unreachable at first)."""
        self.fresh_starts = 0
        """How many times a resume token could not be used and a new stream was opened instead."""
        self._stopping = asyncio.Event()
        self._leftover: asyncio.Task[None] | None = None
        self.up = asyncio.Event()
        """Set while the stream is live."""

    @property
    def cursor_id(self) -> int | None:
        """The server's id of the live stream's cursor (diagnostics and tests)."""
        cursor = getattr(self._stream, "_cursor", None)
        if cursor is None or not self.up.is_set():
            return None
        return int(cursor.cursor_id)

    async def start(self) -> bool:
        """Starts the supervisor on first use; True once the stream is live, False when the server
        cannot be reached (the stream opens when it can). Any other error of the first attempt
        propagates (and the next call tries again)."""
        if self._task is None or self._task.done():
            self._first = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._supervise(), name="queuert-mongodb-notify")
        first = self._first
        if first is not None and not first.done():
            return await asyncio.shield(first)
        return self.up.is_set()

    async def close(self) -> None:
        """Stops the supervisor: it leaves at its next read (within ``max_await``), or is
        cancelled when it does not in time. Never cancelled in the middle of a read first: PyMongo
        cleans a cancelled change stream up on the same client, which can wait for the client."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait({task}, timeout=self._read_timeout + self._open_timeout)
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=self._open_timeout)
            if not task.done():
                self._leftover = task
            elif not task.cancelled() and task.exception() is not None:
                logger.debug(
                    "change stream supervisor ended with an error", exc_info=task.exception()
                )
        first, self._first = self._first, None
        if first is not None and not first.done():
            first.cancel()
        await self._close_stream()

    async def finish(self) -> None:
        """Awaits a supervisor that :meth:`close` could not stop in time (call it once the client
        is closed, which ends whatever it waits for), for at most ``open_timeout``."""
        task, self._leftover = self._leftover, None
        if task is not None:
            await asyncio.wait({task}, timeout=self._open_timeout)
            if not task.done():
                logger.warning("change stream supervisor did not stop")

    async def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        self.up.clear()
        if stream is not None:
            with contextlib.suppress(Exception), pymongo.timeout(self._open_timeout):
                await stream.close()

    async def _open(self) -> Any:
        with pymongo.timeout(self._open_timeout):
            await self._prepare()
            return await self._collection.watch(
                _PIPELINE, resume_after=self.token, max_await_time_ms=self._max_await_ms
            )

    async def _supervise(self) -> None:
        delay = self._initial_delay
        down = False
        while not self._stopping.is_set():
            try:
                stream = await self._open()
            except asyncio.CancelledError:
                raise
            except PyMongoError as error:
                if self.token is not None and isinstance(error, OperationFailure):
                    # The token is unusable (history gone, collection dropped): start afresh; the
                    # catch-up call when the stream is up covers whatever was missed.
                    logger.warning(
                        "change stream cannot resume; opening a new one",
                        extra={"queuert_error": repr(error)},
                    )
                    self.token = None
                    self.fresh_starts += 1
                    continue
                if self._first is not None and not self._first.done():
                    if not unreachable(error):
                        self._first.set_exception(error)
                        return
                    self._first.set_result(False)
                down = True
                logger.warning(
                    "change stream could not be opened; retrying",
                    extra={"queuert_error": repr(error), "queuert_retry_in": delay},
                )
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._max_delay)
                continue
            self._stream = stream
            self.token = stream.resume_token or self.token
            delay = self._initial_delay
            self.up.set()
            if down:
                self.reconnects += 1
                logger.info("change stream back; catching up listeners")
            if self._first is not None and not self._first.done():
                self._first.set_result(True)
            self._on_up()
            down = True
            try:
                await self._read(stream)
            except asyncio.CancelledError:
                raise
            except PyMongoError as error:
                logger.warning("change stream lost; resuming", extra={"queuert_error": repr(error)})
            if self._stopping.is_set():
                return
            self._on_down()
            await self._close_stream()

    async def _read(self, stream: Any) -> None:
        """Delivers messages until the stream fails or ends (invalidated)."""
        cursor = getattr(stream, "_cursor", None)
        while stream.alive and not self._stopping.is_set():
            with pymongo.timeout(self._read_timeout):
                change = await stream.try_next()
            self.token = stream.resume_token or self.token
            resumed = getattr(stream, "_cursor", None)
            if resumed is not cursor:
                # The driver resumed the stream on a new cursor after a resumable error.
                cursor = resumed
                self.reconnects += 1
                logger.info("change stream resumed by the driver; catching up listeners")
                self._on_down()
                self._on_up()
            if change is not None and change.get("operationType") == "insert":
                document = change.get("fullDocument")
                if isinstance(document, Mapping):
                    self._on_message(document)
