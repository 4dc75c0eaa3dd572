"""Synchronous enqueue with PyMySQL: the backends of :class:`~queuert.SyncClient` on MySQL / MariaDB.

``SyncClient(PymysqlSyncBackend(), job_types=[...])`` starts and manages chains on your own
``pymysql`` connection, inside your transaction, and ``SyncClient(SqlAlchemySyncBackend())`` on a
SQLAlchemy sync ``Session`` or ``Connection`` of a ``mysql+pymysql://`` engine. The MySQL adapter's
own operations run directly on that connection (:class:`InlinePymysqlProvider`), so its coroutines
never wait and the sync client runs them to their end on your thread.

The adapter needs ``READ COMMITTED`` transactions: a write call on a connection with no transaction
open starts one at that level itself (``SET TRANSACTION ISOLATION LEVEL READ COMMITTED``, then its
first statement begins it, autocommit being off); a transaction you opened yourself must run at it. MySQL cannot carry a
wake-up inside a transaction: workers in other processes find the new jobs when they poll (or pass
the sync client a notify adapter and the event loop it runs on).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from queuert.errors import UsageError
from queuert.notify import NotifyInTransaction
from queuert.sqlalchemy_sync_backend import SqlAlchemySessionBackend
from queuert.state import StateAdapter

from queuert_mysql._provider import Row, TxState
from queuert_mysql.state import MysqlStateAdapter

__all__ = ["InlinePymysqlProvider", "PymysqlSyncBackend", "SqlAlchemySyncBackend"]

_IN_TRANSACTION = 1
"""PyMySQL's ``SERVER_STATUS_IN_TRANS`` bit of ``Connection.server_status``."""


class InlinePymysqlProvider:
    """The :class:`~queuert_mysql.MysqlProvider` of the synchronous backends: each statement runs
    at once on the ``pymysql`` connection given as ``tx`` (the caller's, in the caller's
    transaction). It opens no connection and no transaction of its own."""

    def __init__(self) -> None:
        self._states: weakref.WeakKeyDictionary[Any, TxState] = weakref.WeakKeyDictionary()

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        raise UsageError(
            "a synchronous MySQL backend runs in the caller's transaction: pass its connection as "
            "tx="
        )

    @staticmethod
    def _cursor(tx: Any) -> Any:
        if tx is None:
            raise UsageError("a synchronous MySQL backend needs tx= (your connection)")
        import pymysql.cursors

        return tx.cursor(pymysql.cursors.Cursor)  # tuples, whatever the connection's default

    async def fetch(self, sql: str, args: Sequence[Any], tx: Any | None) -> list[Row]:
        with self._cursor(tx) as cur:
            cur.execute(sql, tuple(args))
            return list(cur.fetchall()) if cur.description is not None else []

    async def execute(self, sql: str, args: Sequence[Any], tx: Any | None) -> int:
        with self._cursor(tx) as cur:
            cur.execute(sql, tuple(args))
            return int(cur.rowcount)

    def state(self, tx: Any) -> TxState:
        found = self._states.get(tx)
        if found is None:
            found = self._states[tx] = TxState()
        return found

    def started(self, tx: Any) -> None:
        """``tx`` began a new transaction: its state starts afresh."""
        self._states[tx] = TxState()

    def multi_statements(self, tx: Any | None) -> bool:
        return False

    async def fetch_many(self, sql: str, args: Sequence[Any], tx: Any | None) -> list[Row]:
        raise NotImplementedError("the inline provider sends one statement per round trip")

    async def close(self) -> None:
        """Nothing to close: the connections are the caller's."""


_TRANSACTION_IN_PROGRESS = 1568
"""MySQL's ``ER_CANT_CHANGE_TX_CHARACTERISTICS``: a transaction is in progress."""


def _begin_unless_begun(tx: Any) -> None:
    """Make the transaction that queuert's next statement begins on ``tx`` (autocommit off) a
    ``READ COMMITTED`` one, unless a transaction is in progress.

    PyMySQL learns the server's transaction flag from OK packets only: after a ``SELECT`` that
    began the caller's transaction (autocommit off), ``server_status`` still says none is open, so
    the server decides instead: ``SET TRANSACTION`` is refused while a transaction is in progress.
    No ``START TRANSACTION`` follows: with autocommit off the next statement begins the transaction
    anyway, and ``START TRANSACTION`` would first commit what the server holds of the caller's,
    such as a ``SAVEPOINT`` (SQLAlchemy's ``begin_nested()``) set before any table was touched.
    """
    import pymysql

    with tx.cursor() as cur:
        try:
            cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != _TRANSACTION_IN_PROGRESS:
                raise
            # the caller's transaction, begun by a read


class PymysqlSyncBackend:
    """:class:`~queuert.sync_backend.SyncBackend` for ``pymysql`` connections (``tx`` is your
    ``pymysql.connections.Connection``). ``database`` and ``table_prefix`` as for
    :class:`~queuert_mysql.MysqlStateAdapter`. See the module docstring for transactions."""

    def __init__(self, *, database: str | None = None, table_prefix: str = "queuert_") -> None:
        self.provider = InlinePymysqlProvider()
        self._state: MysqlStateAdapter[Any] = MysqlStateAdapter(
            self.provider, database=database, table_prefix=table_prefix
        )

    @property
    def state(self) -> StateAdapter[Any]:
        return self._state

    def transaction_begins(self, tx: Any) -> None:
        """A failed statement of an earlier transaction on ``tx`` no longer counts (the caller
        opens ``sync.hooks(conn)`` or ``sync.transaction(conn)`` around each transaction)."""
        self.provider.started(tx)

    def transaction_of(self, tx: Any, *, write: bool) -> Any:
        import pymysql.connections

        if not isinstance(tx, pymysql.connections.Connection):
            raise UsageError(
                f"tx={tx!r:.80} is not a pymysql connection: pass the connection of your "
                "transaction"
            )
        is_open, status, autocommit = tx.open, tx.server_status, tx.get_autocommit()
        if not is_open:
            raise UsageError("the connection is closed")
        if not status & _IN_TRANSACTION:
            self.provider.started(tx)  # what happened in an earlier transaction is over
        if write and not status & _IN_TRANSACTION:
            if autocommit:
                raise UsageError(
                    "this pymysql connection is in autocommit mode with no transaction begun (each "
                    "statement would commit on its own): call conn.begin() first"
                )
            _begin_unless_begun(tx)
        return tx

    def notifier_in_transaction(self) -> NotifyInTransaction | None:
        return None  # MySQL has no message channel inside a transaction

    def attach_commit_hooks(
        self, tx: Any, on_commit: Callable[[], None], on_rollback: Callable[[], None]
    ) -> bool:
        return False  # pymysql connections have no commit events


class SqlAlchemySyncBackend(SqlAlchemySessionBackend):
    """:class:`~queuert.sync_backend.SyncBackend` for SQLAlchemy 2 sync ``Session`` and
    ``Connection`` objects on ``mysql+pymysql://`` (or ``mariadb+pymysql://``) engines. queuert's
    statements run on the PyMySQL connection under it, in its transaction, as with
    :class:`PymysqlSyncBackend`; create the engine with ``isolation_level="READ COMMITTED"``. With a
    ``Session`` the side effects follow its commit and rollback events; with a ``Connection`` open
    ``with sync_client.hooks(conn):`` around its transaction."""

    driver = "pymysql"
    engines = "mysql+pymysql:// engines"

    def __init__(self, *, database: str | None = None, table_prefix: str = "queuert_") -> None:
        super().__init__(PymysqlSyncBackend(database=database, table_prefix=table_prefix))
