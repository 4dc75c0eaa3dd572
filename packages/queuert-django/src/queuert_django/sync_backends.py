"""The sync backends of queuert's adapters on Django's own connection, with Django's commit hooks.

Django's connection is an ordinary DB-API connection (``connection.connection``: psycopg 3 on
PostgreSQL, ``sqlite3`` on SQLite), so the adapters' sync backends run queuert's statements on it as
they are. What Django adds is the end of the transaction: the side effects of a call (wake-ups that
cannot travel in the transaction, observability events) are handed to ``transaction.on_commit``,
which runs them after the outermost ``atomic()`` block commits and drops them when the block, or
the savepoint of a nested block they were registered in, rolls back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from queuert import SyncBackend, UsageError

from queuert_django.conf import QueuertSettings

__all__ = ["sync_backend"]


def _check_atomic(alias: str, write: bool) -> None:
    if write and not transaction.get_connection(alias).in_atomic_block:
        raise UsageError(
            f"queuert writes on Django's connection {alias!r} inside transaction.atomic("
            f"using={alias!r}) only (start_chain and start_chains open one themselves)"
        )


def _on_commit(alias: str, on_commit: Callable[[], None]) -> bool:
    if not transaction.get_connection(alias).in_atomic_block:
        return False  # outside atomic() Django would run it at once, before any commit
    transaction.on_commit(on_commit, using=alias, robust=True)
    return True


def sync_backend(conf: QueuertSettings) -> SyncBackend[Any]:
    """The sync backend for ``conf``'s database, whose commit hooks are Django's ``on_commit``."""
    alias = conf.database
    if conf.backend == "sqlite":
        from queuert_sqlite import SqliteSyncBackend

        class DjangoSqliteSyncBackend(SqliteSyncBackend):
            def transaction_of(self, tx: Any, *, write: bool) -> Any:
                _check_atomic(alias, write)
                return super().transaction_of(tx, write=write)

            def attach_commit_hooks(
                self, tx: Any, on_commit: Callable[[], None], on_rollback: Callable[[], None]
            ) -> bool:
                return _on_commit(alias, on_commit)

        return DjangoSqliteSyncBackend(table_prefix=conf.table_prefix)

    from queuert_postgres import PsycopgSyncBackend

    class DjangoPsycopgSyncBackend(PsycopgSyncBackend):
        def transaction_of(self, tx: Any, *, write: bool) -> Any:
            _check_atomic(alias, write)
            return super().transaction_of(tx, write=write)

        def attach_commit_hooks(
            self, tx: Any, on_commit: Callable[[], None], on_rollback: Callable[[], None]
        ) -> bool:
            return _on_commit(alias, on_commit)

    return DjangoPsycopgSyncBackend(
        schema=conf.schema,
        table_prefix=conf.table_prefix,
        # with Redis or NATS wake-ups the NOTIFY in the transaction would reach no worker
        channel_prefix=conf.channel_prefix if conf.notify and conf.broker_url is None else None,
    )
