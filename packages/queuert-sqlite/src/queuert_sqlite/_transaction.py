"""The transaction object of the SQLite adapter, and its savepoints.

A transaction holds the provider's single writer connection from ``transaction()`` entry to exit.
What it must send before its next operation waits in a queue: ``BEGIN IMMEDIATE``, savepoint
statements and deferred writes (see :meth:`SqliteProvider.defer_write`). An empty transaction or an
unused savepoint therefore never reaches SQLite, and the queue goes out with the next operation or
the COMMIT, in the same hop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import aiosqlite
from queuert.errors import TransactionAbortedError

from queuert_sqlite._busy import BEGIN

if TYPE_CHECKING:
    from queuert_sqlite._provider import SqliteProvider

__all__ = [
    "Deferred",
    "SavepointBlock",
    "SqliteConnection",
    "TransactionBlock",
    "in_savepoint",
]

T = TypeVar("T")


def in_savepoint(raw: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` inside a savepoint: nothing of it remains if it raises (on the connection's
    thread, inside a transaction)."""
    raw.execute("SAVEPOINT queuert_op")
    try:
        result = fn(raw)
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK TO queuert_op")
            raw.execute("RELEASE queuert_op")
        raise
    raw.execute("RELEASE queuert_op")
    return result


@dataclass(frozen=True)
class Deferred:
    """A write queued by :meth:`SqliteProvider.defer_write` inside ``savepoint`` (a name; ``None``
    for the transaction itself)."""

    fn: Callable[[sqlite3.Connection], object]
    savepoint: str | None


class SqliteConnection:
    """The transaction object of the SQLite adapter: the writer connection inside your transaction.

    Pass it as ``tx=`` to queuert calls, and run your own SQL in the same transaction with
    :meth:`execute`, :meth:`executemany` or :meth:`run`. It is valid only inside the
    ``async with ....transaction()`` block that produced it.
    """

    __slots__ = (
        "_aborted",
        "_active",
        "_begun",
        "_depth",
        "_direct",
        "_open",
        "_pending",
        "_provider",
        "_savepoints",
        "_task",
    )

    def __init__(self, provider: SqliteProvider, task: asyncio.Task[Any] | None) -> None:
        self._provider = provider
        self._task = task
        self._active = True
        self._begun = False
        """Set on the writer thread once ``BEGIN IMMEDIATE`` has run."""
        self._pending: list[str | Deferred] = [BEGIN]
        """What to send before the next operation: statements (BEGIN, SAVEPOINT, RELEASE, ROLLBACK TO)
        and deferred writes (see :meth:`SqliteProvider.defer_write`)."""
        self._direct = False
        """The aiosqlite connection was handed out: statements may reach SQLite without us, so
        nothing may be deferred any more (they would not see it)."""
        self._savepoints = 0
        self._depth = 0
        """Open savepoints (0 = the transaction itself)."""
        self._open: list[str] = []
        """Names of the open savepoints, outermost first."""
        self._aborted: int | None = None
        """Depth at which a poisoned statement failed (emulated aborted state), else None."""

    @property
    def _has_writes(self) -> bool:
        """Deferred writes are queued (they make the transaction worth committing)."""
        return any(type(item) is Deferred for item in self._pending)

    @property
    def is_active(self) -> bool:
        return self._active

    def _check_not_aborted(self) -> None:
        if self._aborted is not None:
            raise TransactionAbortedError(
                "a statement failed in this transaction: roll back to the enclosing savepoint "
                "(or end the transaction) before running more statements"
            )

    @property
    def provider(self) -> SqliteProvider:
        return self._provider

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        """Execute one statement in this transaction and return all its rows (tuples)."""
        return await self._provider.run_write(
            lambda raw: raw.execute(sql, parameters).fetchall(), self, atomic=False
        )

    async def executemany(self, sql: str, seq_of_parameters: Sequence[Sequence[Any]]) -> int:
        """Execute one statement once per parameter set; returns the number of changed rows."""

        def op(raw: sqlite3.Connection) -> int:
            return raw.executemany(sql, seq_of_parameters).rowcount

        return await self._provider.run_write(op, self, atomic=False)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the writer's thread, inside this transaction, in one hop.

        ``fn`` gets the plain :class:`sqlite3.Connection`; it must not commit or roll back.
        """
        return await self._provider.run_write(fn, self, atomic=False)

    async def aiosqlite_connection(self) -> aiosqlite.Connection:
        """The underlying :class:`aiosqlite.Connection`, after the transaction has begun.

        Statements you send through it run in this transaction; do not commit or roll back on it.
        """
        self._direct = True
        await self._provider.run_write(lambda raw: None, self, atomic=False)
        return self._provider._writer_conn().aio

    def __repr__(self) -> str:
        state = "active" if self._active else "ended"
        return f"<SqliteConnection {state} begun={self._begun}>"


class TransactionBlock:
    """``async with provider.transaction() as tx``."""

    __slots__ = ("_provider", "_tx")

    def __init__(self, provider: SqliteProvider) -> None:
        self._provider = provider
        self._tx: SqliteConnection | None = None

    async def __aenter__(self) -> SqliteConnection:
        self._tx = await self._provider._begin()
        return self._tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tx = self._tx
        assert tx is not None
        await self._provider._end(tx, commit=exc_type is None)


class SavepointBlock:
    """``async with provider.savepoint(tx)``: queued ``SAVEPOINT``, then ``RELEASE`` or
    ``ROLLBACK TO`` (nothing at all if nothing ran inside)."""

    __slots__ = ("_depth", "_name", "_provider", "_tx")

    def __init__(self, provider: SqliteProvider, tx: SqliteConnection) -> None:
        self._provider = provider
        self._tx = tx
        self._name = ""
        self._depth = 0

    async def __aenter__(self) -> SqliteConnection:
        tx = self._provider._check_tx(self._tx)
        tx._check_not_aborted()
        tx._savepoints += 1
        tx._depth += 1
        self._depth = tx._depth
        self._name = f"queuert_sp_{tx._savepoints}"
        tx._open.append(self._name)
        tx._pending.append(f"SAVEPOINT {self._name}")
        return tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tx = self._tx
        if not tx._active:
            return
        tx._depth = self._depth - 1
        del tx._open[self._depth - 1 :]
        aborted = tx._aborted is not None and tx._aborted >= self._depth
        if aborted:
            tx._aborted = None  # rolling this savepoint back ends the aborted state
        rollback = exc_type is not None or aborted
        opened = f"SAVEPOINT {self._name}"
        pending = tx._pending
        if pending and pending[-1] == opened:
            pending.pop()  # nothing ran inside: the savepoint never reached SQLite
        elif rollback and opened in pending:
            # Only deferred writes ran inside and none reached SQLite: forget them.
            del pending[pending.index(opened) :]
        else:
            if rollback:
                tx._pending.append(f"ROLLBACK TO {self._name}")
            tx._pending.append(f"RELEASE {self._name}")
        if aborted and exc_type is None:
            raise TransactionAbortedError(
                "a statement failed in this savepoint; it has been rolled back"
            )
