"""SQLAlchemy async sessions as transactions of the SQLite adapter.

Besides its own :class:`~queuert_sqlite.SqliteConnection`, the adapter accepts as ``tx`` a SQLAlchemy
2 ``AsyncSession`` or ``AsyncConnection`` on a ``sqlite+aiosqlite://`` engine of the same database
file. Its operations then run on the aiosqlite connection under the session, on that connection's
thread and inside the session's transaction, one hop each, exactly as they run on the adapter's own
writer; the session commits or rolls them back with the application's rows. The adapter's own
connections (the worker's claims, reads without ``tx``) are not involved: SQLite's file locks order
the two writers, and the session's transaction takes the write lock up front (``BEGIN IMMEDIATE``)
when queuert writes first.
"""

from __future__ import annotations

import os
import sqlite3
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from itertools import count
from typing import Any, TypeVar

import aiosqlite
from queuert.errors import UsageError

from queuert_sqlite._busy import BEGIN
from queuert_sqlite._transaction import in_savepoint

__all__ = ["SessionTransactions", "is_session"]

T = TypeVar("T")

_names = count(1)


def is_session(tx: object) -> bool:
    """True if ``tx`` looks like a SQLAlchemy ``AsyncSession`` or ``AsyncConnection``."""
    return hasattr(tx, "sync_session") or hasattr(tx, "get_raw_connection")


class SessionTransactions:
    """Runs the adapter's operations on the aiosqlite connection under a SQLAlchemy async
    session or connection (see the module docstring), for the database file ``database``."""

    def __init__(self, database: str, *, memory: bool) -> None:
        self._database = database
        self._memory = memory
        self._checked: weakref.WeakSet[aiosqlite.Connection] = weakref.WeakSet()
        """Driver connections known to be on this database."""

    async def _driver(self, tx: Any) -> aiosqlite.Connection:
        if hasattr(tx, "sync_session"):
            conn = await tx.connection()  # begins the session's transaction if needed
        elif hasattr(tx, "get_raw_connection"):
            if tx.closed:
                raise UsageError("the transaction has ended (its connection is closed)")
            conn = tx
        else:
            raise UsageError(
                f"tx={tx!r:.80} is not a transaction of this SQLite database: pass the one of "
                "client.transaction(), or a SQLAlchemy AsyncSession / AsyncConnection"
            )
        driver = (await conn.get_raw_connection()).driver_connection
        if not isinstance(driver, aiosqlite.Connection):
            raise UsageError(
                "a SQLAlchemy session on SQLite must use the sqlite+aiosqlite:// driver, not "
                f"{type(driver).__module__}"
            )
        if driver not in self._checked:
            await self._check_database(driver)
            self._checked.add(driver)
        return driver

    async def _check_database(self, driver: aiosqlite.Connection) -> None:
        if self._memory:
            raise UsageError(
                "an in-memory SQLite database is private to its connection: a SQLAlchemy session "
                "cannot share it with the adapter (use a database file)"
            )
        raw: sqlite3.Connection = driver._conn
        mine = _path_of(self._database)

        def same_file() -> str | None:
            """The session's database file if it is not the adapter's, else ``None``."""
            rows = raw.execute("PRAGMA database_list").fetchall()
            theirs = next((str(row[2]) for row in rows if row[1] == "main"), "")
            if theirs and os.path.realpath(theirs) == os.path.realpath(mine):
                return None
            return theirs or "a database without a file"

        other = await _submit(driver)(same_file)
        if other is not None:
            raise UsageError(
                f"the SQLAlchemy session is on {other!r}, not on the adapter's database "
                f"{self._database!r}"
            )

    async def run(
        self, fn: Callable[[sqlite3.Connection], T], tx: Any, *, write: bool, atomic: bool
    ) -> T:
        """``fn(connection)`` on the session's connection thread, in its transaction (begun
        with ``BEGIN IMMEDIATE`` first when a write finds none open)."""
        driver = await self._driver(tx)
        raw: sqlite3.Connection = driver._conn

        def job() -> T:
            if write and not raw.in_transaction:
                raw.execute(BEGIN)
            return in_savepoint(raw, fn) if atomic else fn(raw)

        result: T = await _submit(driver)(job)
        return result

    def savepoint(self, tx: Any) -> AbstractAsyncContextManager[Any]:
        return self._savepoint(tx)

    @asynccontextmanager
    async def _savepoint(self, tx: Any) -> AsyncIterator[Any]:
        name = f"queuert_session_sp_{next(_names)}"
        await self.run(lambda raw: raw.execute(f"SAVEPOINT {name}"), tx, write=True, atomic=False)
        try:
            yield tx
        except BaseException:

            def undo(raw: sqlite3.Connection) -> None:
                if raw.in_transaction:
                    raw.execute(f"ROLLBACK TO {name}")
                    raw.execute(f"RELEASE {name}")

            await self.run(undo, tx, write=False, atomic=False)
            raise
        await self.run(lambda raw: raw.execute(f"RELEASE {name}"), tx, write=False, atomic=False)


def _submit(driver: aiosqlite.Connection) -> Callable[[Callable[[], T]], Awaitable[T]]:
    """aiosqlite's ``_execute``: runs a function on the connection's thread, in order with its
    statements (what the adapter's own connections use too, see ``_connection``)."""
    submit: Callable[[Callable[[], T]], Awaitable[T]] = driver._execute
    return submit


def _path_of(database: str) -> str:
    """The file of ``database`` (a path or a ``file:`` URI)."""
    if database.startswith("file:"):
        return database[len("file:") :].split("?", 1)[0]
    return database
