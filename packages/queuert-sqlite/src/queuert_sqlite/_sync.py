"""Synchronous enqueue with Python's ``sqlite3``: the backend of :class:`~queuert.SyncClient`.

``SyncClient(SqliteSyncBackend(), job_types=[...])`` starts and manages chains on your own
``sqlite3.Connection``, inside your transaction: the SQLite adapter's own operations run directly on
that connection (:class:`~queuert_sqlite._inline_provider.InlineSqliteProvider`). SQLite cannot carry
a wake-up inside a transaction and ``sqlite3`` has no commit events, so open
``with sync_client.hooks(conn):`` around each transaction; workers in other processes find the new
jobs when they poll (see the ``SyncClient`` docs for waking a worker of this process at once).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from queuert.errors import UsageError
from queuert.notify import NotifyInTransaction
from queuert.sqlalchemy_sync_backend import SqlAlchemySessionBackend
from queuert.state import StateAdapter

from queuert_sqlite._adapter import SqliteStateAdapter
from queuert_sqlite._busy import BEGIN
from queuert_sqlite._inline_provider import InlineSqliteProvider

__all__ = ["SqlAlchemySyncBackend", "SqliteSyncBackend"]


class SqliteSyncBackend:
    """:class:`~queuert.sync_backend.SyncBackend` for ``sqlite3`` connections (``tx`` is your
    ``sqlite3.Connection``). ``table_prefix`` as for the async adapter.

    The connection's settings stay yours: rows must come back as tuples or :class:`sqlite3.Row`,
    and queuert's foreign keys are enforced only if you switch ``PRAGMA foreign_keys`` on (its
    operations do not depend on them; they guard against writes that bypass queuert). A write call
    on a connection that is not in a transaction begins one, with ``BEGIN IMMEDIATE`` (taking
    SQLite's write lock up front); on a connection in autocommit mode it is refused, since each statement would commit alone.
    """

    def __init__(self, *, table_prefix: str = "queuert_") -> None:
        self._state = SqliteStateAdapter(InlineSqliteProvider(), table_prefix=table_prefix)

    @property
    def state(self) -> StateAdapter[Any]:
        return self._state

    def transaction_of(self, tx: sqlite3.Connection, *, write: bool) -> sqlite3.Connection:
        if not isinstance(tx, sqlite3.Connection):
            raise UsageError(
                f"tx={tx!r:.80} is not a sqlite3 connection: pass the connection of your "
                "transaction"
            )
        if write and not tx.in_transaction:
            if _autocommit(tx):
                raise UsageError(
                    "this sqlite3 connection is in autocommit mode with no open transaction (each "
                    "statement would commit on its own): run `BEGIN` first"
                )
            # the write lock up front (waiting up to the connection's timeout): a deferred BEGIN
            # that read first could not upgrade once another connection wrote (WAL snapshots)
            tx.execute(BEGIN)
        return tx

    def notifier_in_transaction(self) -> NotifyInTransaction | None:
        return None  # SQLite has no message channel inside a transaction

    def attach_commit_hooks(
        self, tx: sqlite3.Connection, on_commit: Callable[[], None], on_rollback: Callable[[], None]
    ) -> bool:
        return False  # sqlite3 connections have no commit events


def _autocommit(tx: sqlite3.Connection) -> bool:
    """True if statements on ``tx`` commit one by one (``isolation_level=None``, or
    ``autocommit=True`` on Python 3.12+)."""
    autocommit = getattr(tx, "autocommit", -1)  # sqlite3.LEGACY_TRANSACTION_CONTROL is -1
    if autocommit is True:
        return True
    return autocommit == -1 and tx.isolation_level is None


class SqlAlchemySyncBackend(SqlAlchemySessionBackend):
    """:class:`~queuert.sync_backend.SyncBackend` for SQLAlchemy 2 sync ``Session`` and
    ``Connection`` objects on ``sqlite://`` engines (the standard ``pysqlite`` driver; ``tx`` is
    your session or connection). queuert's statements run on the ``sqlite3`` connection under it,
    in its transaction, as with :class:`SqliteSyncBackend`. With a ``Session`` the side effects
    follow its commit and rollback events (no ``sync_client.hooks()`` block needed; a rolled-back
    ``begin_nested()`` drops its own); with a ``Connection`` open ``with sync_client.hooks(conn):``
    around its transaction."""

    driver = "sqlite3"
    engines = "sqlite:// engines with the standard sqlite3 driver"

    def __init__(self, *, table_prefix: str = "queuert_") -> None:
        super().__init__(SqliteSyncBackend(table_prefix=table_prefix))
