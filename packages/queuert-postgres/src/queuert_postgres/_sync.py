"""Synchronous enqueue with psycopg 3: the backend of :class:`~queuert.SyncClient`.

``SyncClient(PsycopgSyncBackend(), job_types=[...])`` starts and manages chains on your own
``psycopg.Connection``, inside your transaction: the PostgreSQL adapter's own operations run directly
on that connection (:class:`~queuert_postgres._inline_provider.InlinePsycopgProvider`). Wake-ups are
sent with ``NOTIFY`` inside your transaction, on the channels a
:class:`~queuert_postgres.PgNotifyAdapter` with the same ``channel_prefix`` listens to: PostgreSQL
delivers them when you commit and drops them when you roll back (a rolled-back savepoint drops its
own). Observability events still wait for your commit in ``with sync_client.hooks(conn):``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from queuert.errors import UsageError
from queuert.notify import Notifications, NotifyInTransaction
from queuert.sqlalchemy_sync_backend import SqlAlchemySessionBackend
from queuert.state import StateAdapter

from queuert_postgres._inline_provider import InlinePsycopgProvider
from queuert_postgres._provider import PgProvider, Sql
from queuert_postgres._schema import validate_identifier
from queuert_postgres.notify import NOTIFY_MANY, channels_of, notify_messages
from queuert_postgres.state import PgStateAdapter

if TYPE_CHECKING:
    import psycopg

__all__ = ["PsycopgSyncBackend", "SqlAlchemySyncBackend", "notifier_on"]


class PsycopgSyncBackend:
    """:class:`~queuert.sync_backend.SyncBackend` for psycopg 3 sync connections (``tx`` is your
    ``psycopg.Connection``, not in autocommit or inside ``with conn.transaction():``).

    ``schema`` and ``table_prefix`` as for :class:`~queuert_postgres.PgStateAdapter`;
    ``channel_prefix`` as for :class:`~queuert_postgres.PgNotifyAdapter` (``None``: send no
    ``NOTIFY``; workers then wake by polling). ``prepare=False`` for PgBouncer in transaction mode.
    """

    def __init__(
        self,
        *,
        schema: str = "public",
        table_prefix: str = "queuert_",
        channel_prefix: str | None = "queuert",
        prepare: bool | None = None,
    ) -> None:
        self.provider = InlinePsycopgProvider(prepare=prepare)
        self._state: PgStateAdapter[Any] = PgStateAdapter(
            self.provider, schema=schema, table_prefix=table_prefix
        )
        if channel_prefix is not None:
            validate_identifier("channel prefix", channel_prefix)
        self._channel_prefix = channel_prefix

    @property
    def state(self) -> StateAdapter[Any]:
        return self._state

    def transaction_of(self, tx: psycopg.Connection[Any], *, write: bool) -> Any:
        return psycopg_in_transaction(tx, write=write)

    def notifier_in_transaction(self) -> NotifyInTransaction | None:
        if self._channel_prefix is None:
            return None
        return notifier_on(self.provider, self._channel_prefix)

    def attach_commit_hooks(
        self,
        tx: psycopg.Connection[Any],
        on_commit: Callable[[], None],
        on_rollback: Callable[[], None],
    ) -> bool:
        return False  # psycopg connections have no commit events


def psycopg_in_transaction(tx: Any, *, write: bool) -> Any:
    """``tx`` if it is a usable psycopg 3 sync connection; :class:`UsageError` otherwise (another
    kind of object, an async connection, a closed connection, or for a write one in autocommit
    outside a transaction, whose statements would each commit on their own)."""
    import psycopg

    if not isinstance(tx, psycopg.Connection):
        raise UsageError(
            f"tx={tx!r:.80} is not a psycopg (sync) Connection: pass the connection of your "
            "transaction (an AsyncConnection goes to the async Client, with PsycopgProvider)"
        )
    if tx.closed:
        raise UsageError("the connection is closed")
    if write and tx.autocommit and tx.info.transaction_status == 0:  # TransactionStatus.IDLE
        raise UsageError(
            "this psycopg connection is in autocommit with no open transaction (each statement "
            "would commit on its own): use it inside `with conn.transaction():`"
        )
    return tx


def notifier_on(provider: PgProvider[Any], channel_prefix: str) -> NotifyInTransaction:
    """Sends notifications with one ``SELECT pg_notify(...)`` through ``provider`` (an inline
    provider), inside the transaction ``tx`` it is given."""
    channels = channels_of(channel_prefix)
    statement = Sql(NOTIFY_MANY)

    async def send(tx: Any, notifications: Notifications) -> None:
        names, payloads = notify_messages(channels, notifications)
        if names:
            await provider.fetch(statement, [names, payloads], tx)

    return send


class SqlAlchemySyncBackend(SqlAlchemySessionBackend):
    """:class:`~queuert.sync_backend.SyncBackend` for SQLAlchemy 2 sync ``Session`` and
    ``Connection`` objects on ``postgresql+psycopg://`` engines (``tx`` is your session or
    connection). queuert's statements run on the psycopg connection under it, in its transaction.
    With a ``Session`` the side effects follow its ``after_commit`` / ``after_rollback`` events (no
    ``sync_client.hooks()`` block needed; a rolled-back ``begin_nested()`` drops its own); a
    ``Connection`` has no events after its commit, so open ``with sync_client.hooks(conn):``
    around its transaction. Wake-ups are ``NOTIFY`` inside the transaction, as with
    :class:`PsycopgSyncBackend`, whose options it takes."""

    driver = "psycopg"
    engines = "psycopg 3 engines (postgresql+psycopg://)"

    def __init__(
        self,
        *,
        schema: str = "public",
        table_prefix: str = "queuert_",
        channel_prefix: str | None = "queuert",
        prepare: bool | None = None,
    ) -> None:
        super().__init__(
            PsycopgSyncBackend(
                schema=schema,
                table_prefix=table_prefix,
                channel_prefix=channel_prefix,
                prepare=prepare,
            )
        )
