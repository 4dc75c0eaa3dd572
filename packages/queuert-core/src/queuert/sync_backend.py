"""The seam between :class:`~queuert.SyncClient` and a database's synchronous driver.

A sync backend gives the sync client a state adapter whose operations complete without suspending
when their ``tx`` is the caller's synchronous connection (the adapter's own code, over a provider
that runs each statement directly on that connection; see :mod:`queuert._inline`), and says how the
wake-ups of a transaction reach the workers:

* :meth:`SyncBackend.notifier_in_transaction` sends them *inside* the caller's transaction where the
  database can carry them (PostgreSQL's ``NOTIFY`` is delivered on commit and dropped on rollback by
  the server itself);
* :meth:`SyncBackend.attach_commit_hooks` runs callbacks after the caller's commit or rollback where
  the connection offers such events (SQLAlchemy sessions and connections);
* otherwise the caller opens ``with sync_client.hooks(tx):`` around its transaction.

Backends ship with the adapter packages: ``queuert_sqlite.SqliteSyncBackend`` (``sqlite3``),
``queuert_postgres.PsycopgSyncBackend`` (psycopg 3), ``queuert_mysql.PymysqlSyncBackend`` (PyMySQL),
and a ``SqlAlchemySyncBackend`` in each of the three for SQLAlchemy's sync ``Session`` and
``Connection``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from queuert.notify import NotifyInTransaction
from queuert.state import StateAdapter

__all__ = ["SyncBackend", "TracksTransactions"]

TxT = TypeVar("TxT", contravariant=True)


class SyncBackend(Protocol[TxT]):  # the caller's connection: an argument only
    """What :class:`~queuert.SyncClient` needs from a database (``TxT``: the caller's connection
    or session type)."""

    @property
    def state(self) -> StateAdapter[Any]:
        """The state adapter the sync client calls; its operations complete without suspending
        when given a transaction from :meth:`transaction_of`."""
        ...

    def transaction_of(self, tx: TxT, *, write: bool) -> Any:
        """The state adapter's ``tx`` for the caller's ``tx``. Checks that ``tx`` is usable (a
        connection of the right kind, inside a transaction when ``write``; a backend may open the
        transaction the driver would open implicitly) and raises
        :class:`~queuert.errors.UsageError` otherwise."""
        ...

    def notifier_in_transaction(self) -> NotifyInTransaction | None:
        """``publish(tx, notifications)`` sending notifications inside an adapter transaction
        ``tx`` (delivered if and when it commits, dropped with a rollback; its coroutine must
        complete without suspending, like the adapter's operations), or ``None`` when this backend
        cannot (they are then published after the commit). Asked once, when the sync client is
        built."""
        ...

    def attach_commit_hooks(
        self, tx: TxT, on_commit: Callable[[], None], on_rollback: Callable[[], None]
    ) -> bool:
        """Arrange ``on_commit()`` after the caller's ``tx`` commits and ``on_rollback()`` after it
        rolls back (at most once each, whichever comes first); False if ``tx`` has no such events."""
        ...


@runtime_checkable
class TracksTransactions(Protocol):
    """A sync backend that keeps state per transaction of the caller's connection (MySQL's record
    of a failed statement, say) and cannot see the caller begin a new one on the same connection:
    :meth:`~queuert.SyncClient.hooks` tells it when the caller opens the block around a new
    transaction."""

    def transaction_begins(self, tx: Any) -> None:
        """The caller is about to begin a new transaction on ``tx``: forget the previous one's."""
        ...
