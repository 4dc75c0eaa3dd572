"""A provider that runs the adapter's operations directly on the caller's ``sqlite3`` connection.

The SQLite adapter's operations are plain functions of a DB-API connection, handed to a provider
that decides where they run. :class:`InlineSqliteProvider` runs them at once, on the connection
given as ``tx`` (the caller's, inside the caller's transaction), so the adapter's coroutines never
wait and :class:`~queuert.SyncClient` runs them to their end without an event loop. It opens no
connection and no transaction of its own: the caller commits or rolls back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from itertools import count
from typing import Any, TypeVar

from queuert.errors import UsageError

from queuert_sqlite._transaction import in_savepoint

__all__ = ["InlineSqliteProvider"]

T = TypeVar("T")

_names = count(1)


class InlineSqliteProvider:
    """Runs each operation on the ``sqlite3.Connection`` given as its ``tx`` (see the module
    docstring); the transaction and the connection belong to the caller."""

    memory = False
    closed = False

    def _check_open(self) -> None:
        """Always open: the connections are the caller's."""

    async def close(self) -> None:
        """Nothing to close: the connections are the caller's."""

    @staticmethod
    def _connection(tx: object) -> sqlite3.Connection:
        if not isinstance(tx, sqlite3.Connection):
            raise UsageError(f"tx={tx!r:.80} is not a sqlite3 connection")
        return tx

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        raise UsageError(
            "a synchronous SQLite backend runs in the caller's transaction: pass its connection as tx="
        )

    def savepoint(self, tx: Any) -> AbstractAsyncContextManager[Any]:
        return self._savepoint(self._connection(tx))

    @asynccontextmanager
    async def _savepoint(self, raw: sqlite3.Connection) -> AsyncIterator[Any]:
        name = f"queuert_sync_sp_{next(_names)}"
        raw.execute(f"SAVEPOINT {name}")
        try:
            yield raw
        except BaseException:
            if raw.in_transaction:
                raw.execute(f"ROLLBACK TO {name}")
                raw.execute(f"RELEASE {name}")
            raise
        raw.execute(f"RELEASE {name}")

    @staticmethod
    def can_defer(tx: object) -> bool:
        return False  # every write runs at once, on the caller's connection

    def defer_write(self, tx: Any, fn: Callable[[sqlite3.Connection], object]) -> None:
        raise AssertionError("can_defer() is False: nothing is deferred")

    async def poison(self, tx: Any, fn: Callable[[sqlite3.Connection], Any]) -> None:
        raise UsageError("a synchronous SQLite backend does not emulate aborted transactions")

    async def run_write(
        self,
        fn: Callable[[sqlite3.Connection], T],
        tx: Any = None,
        *,
        atomic: bool = True,
        inline: bool = False,
    ) -> T:
        """``fn(tx)``; with ``atomic``, inside a savepoint so that an error leaves nothing of it
        (every write runs at once on the caller's connection: ``inline`` changes nothing)."""
        raw = self._connection(tx)
        return in_savepoint(raw, fn) if atomic else fn(raw)

    async def run_read(self, fn: Callable[[sqlite3.Connection], T], tx: Any = None) -> T:
        return fn(self._connection(tx))
