"""One SQLite connection and the aiosqlite thread it lives on.

Crossing to a connection's thread is the expensive part of every operation, so the provider sends a
whole operation (a plain function of the :class:`sqlite3.Connection`) in one :meth:`call`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from types import ModuleType
from typing import Any, TypeVar

import aiosqlite

from queuert_sqlite._driver import SqliteSetupError
from queuert_sqlite._options import SqliteOptions

__all__ = ["ThreadConnection", "setup_connection"]

T = TypeVar("T")

_Submit = Callable[[Callable[[], Any]], Awaitable[Any]]


def setup_connection(raw: sqlite3.Connection, options: SqliteOptions) -> None:
    """The settings every connection of the provider gets (enforced foreign keys among them)."""
    raw.execute(f"PRAGMA busy_timeout = {int(options.busy_timeout * 1000)}")
    raw.execute("PRAGMA foreign_keys = ON")
    row = raw.execute("PRAGMA foreign_keys").fetchone()
    if row is None or row[0] != 1:
        raise SqliteSetupError(
            "PRAGMA foreign_keys = ON has no effect on this SQLite build (compiled without foreign "
            "key support?); queuert needs enforced foreign keys"
        )
    raw.execute(f"PRAGMA synchronous = {options.synchronous.upper()}")
    raw.execute("PRAGMA temp_store = MEMORY")


class ThreadConnection:
    """One SQLite connection and the aiosqlite thread it lives on (``role``: writer, reader or
    checkpointer)."""

    __slots__ = ("_submit", "aio", "finished", "raw", "role", "submitted")

    def __init__(self, aio: aiosqlite.Connection, raw: sqlite3.Connection, role: str) -> None:
        self.aio = aio
        self.raw = raw
        self.role = role
        self.submitted = 0
        """Calls queued for the thread (counted on the event loop's thread)."""
        self.finished = 0
        """Calls the thread has finished running (counted on the thread, after the call)."""
        # aiosqlite runs every call of a connection on that connection's thread, in order. Its
        # internal ``_execute`` is the one primitive that runs an arbitrary function there, which is
        # what lets an operation of many statements cost one thread hop instead of one per statement.
        submit: _Submit | None = getattr(aio, "_execute", None)
        if submit is None:  # pragma: no cover - guarded by the aiosqlite version range
            raise SqliteSetupError(
                "this aiosqlite version has no Connection._execute; install aiosqlite >=0.20,<1"
            )
        self._submit = submit

    def call(self, fn: Callable[[], T]) -> Awaitable[T]:
        """Run ``fn`` on the connection's thread (after everything queued before it).

        Await the result at once: the call is counted as submitted here and queued when awaited.
        """
        self.submitted += 1
        return self._submit(partial(self._counted, fn))

    def _counted(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        finally:
            self.finished += 1

    @property
    def idle(self) -> bool:
        """No call is queued or running on the thread: the connection may be used from the event
        loop's thread without meeting one (a caller cancelled while awaiting :meth:`call` leaves
        its function to run to its end on the thread)."""
        return self.submitted == self.finished

    @classmethod
    async def open(
        cls,
        database: str,
        *,
        uri: bool,
        options: SqliteOptions,
        role: str,
        setup: Callable[[sqlite3.Connection], None],
        dbapi: ModuleType,
        any_thread: bool = False,
    ) -> ThreadConnection:
        """Open the connection on a thread of its own; with ``any_thread`` it may also be used from
        other threads (``check_same_thread=False``), when the caller knows the thread is idle."""
        holder: list[sqlite3.Connection] = []

        def connector() -> sqlite3.Connection:
            raw: sqlite3.Connection = dbapi.connect(
                database,
                timeout=options.busy_timeout,
                isolation_level=None,
                uri=uri,
                cached_statements=options.cached_statements,
                check_same_thread=not any_thread,
            )
            try:
                setup(raw)
            except BaseException:
                raw.close()
                raise
            holder.append(raw)
            return raw

        aio = aiosqlite.Connection(connector, 64)
        # A forgotten close() must not hang interpreter exit on aiosqlite's (non-daemon) thread;
        # being killed at exit is safe for SQLite (an open transaction rolls back on next open).
        thread = getattr(aio, "_thread", None)
        if thread is not None:
            thread.daemon = True
        await aio
        return cls(aio, holder[0], role)

    async def close(self) -> None:
        await self.aio.close()
