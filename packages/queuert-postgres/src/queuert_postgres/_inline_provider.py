"""A provider that runs the adapter's statements directly on the caller's synchronous connection.

:class:`InlinePsycopgProvider` is the :class:`~queuert_postgres.PgProvider` of the synchronous
backends: ``tx`` is a psycopg 3 ``Connection`` (the caller's, inside the caller's transaction) and
each statement runs on it at once. The state adapter's coroutines therefore never wait, and
:class:`~queuert.SyncClient` runs them to their end without an event loop. The provider opens no
connection and no transaction of its own: the caller commits or rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from queuert.errors import UsageError

from queuert_postgres._provider import Row, Sql

__all__ = ["InlinePsycopgProvider"]


class InlinePsycopgProvider:
    """Runs each statement on the psycopg 3 sync ``Connection`` given as ``tx`` (see the module
    docstring). ``prepare=False`` disables server-side prepared statements (PgBouncer)."""

    def __init__(self, *, prepare: bool | None = None) -> None:
        self._prepare = False if prepare is False else None

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        raise UsageError(
            "a synchronous PostgreSQL backend runs in the caller's transaction: pass its "
            "connection as tx="
        )

    async def fetch(self, sql: Sql, args: Sequence[Any], tx: Any | None) -> list[Row]:
        if tx is None:
            raise UsageError("a synchronous PostgreSQL backend needs tx= (your connection)")
        text, order = sql.format_style()
        with tx.cursor() as cur:
            cur.execute(text, [args[i] for i in order], prepare=self._prepare)
            if cur.description is None:
                return []
            rows: list[Row] = cur.fetchall()
            return rows

    async def script(self, sql: str, tx: Any) -> None:
        tx.execute(sql)

    async def close(self) -> None:
        """Nothing to close: the connections are the caller's."""
