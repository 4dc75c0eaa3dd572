"""``SqlAlchemyProvider``: queuert's SQL inside SQLAlchemy 2 async sessions on MySQL / MariaDB."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from queuert.errors import TransactionAbortedError, UsageError
from queuert.sqlalchemy_session import attach_session_commit_hooks

from queuert_mysql._provider import ABORTED_AT_COMMIT, Row, TxState, run_on

__all__ = ["SqlAlchemyProvider"]

_DRIVERS = ("aiomysql", "asyncmy")


class SqlAlchemyProvider:
    """Runs the SQL inside SQLAlchemy 2 async transactions (``tx`` = ``AsyncSession`` or
    ``AsyncConnection``).

    Built from the application's ``AsyncEngine`` (``mysql+aiomysql://`` or ``mysql+asyncmy://``;
    ``mariadb+...`` too). Statements go straight to the driver connection under the session, in the
    session's transaction, so a rollback of the session also removes the jobs. Create the engine
    with ``isolation_level="READ COMMITTED"`` (the adapter relies on it inside your sessions);
    ``transaction()`` sets it on the connections it opens itself, and reads without ``tx`` run on
    an ``AUTOCOMMIT`` connection of the engine.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._states: weakref.WeakKeyDictionary[Any, tuple[Any, TxState]] = (
            weakref.WeakKeyDictionary()
        )

    def attach_commit_hooks(
        self, tx: Any, on_commit: Callable[[], None], on_rollback: Callable[[], None]
    ) -> bool:
        """For an ``AsyncSession``: call ``on_commit`` after its transaction commits and
        ``on_rollback`` after it (or the ``begin_nested()`` savepoint the call ran in) rolls back,
        through the session's events (see :mod:`queuert.sqlalchemy_session`)."""
        sync_session = getattr(tx, "sync_session", None)
        if sync_session is None:
            return False
        return attach_session_commit_hooks(sync_session, on_commit, on_rollback)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="READ COMMITTED")
            async with conn.begin():
                yield conn
                if self.state(conn).aborted is not None:
                    raise TransactionAbortedError(ABORTED_AT_COMMIT)  # rolls back

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        return self._transaction()

    async def _connection(self, tx: Any) -> Any:
        """The ``AsyncConnection`` of ``tx`` (an ``AsyncSession``'s, with its transaction begun)."""
        if hasattr(tx, "sync_session"):
            return await tx.connection()
        return tx

    async def _driver(self, conn: Any) -> Any:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        module = type(driver).__module__.split(".")[0]
        if module not in _DRIVERS:
            raise UsageError(
                f"SqlAlchemyProvider supports aiomysql and asyncmy engines, not {module}"
            )
        return driver

    def state(self, tx: Any) -> TxState:
        """Per transaction: a session or connection that begins a new transaction starts afresh.
        Anything but an ``AsyncSession`` or an open ``AsyncConnection`` is a :class:`UsageError`."""
        sync = getattr(tx, "sync_session", None)
        if sync is None:
            if not hasattr(tx, "get_raw_connection"):
                raise UsageError(
                    f"tx={tx!r:.80} is not a SQLAlchemy AsyncSession or AsyncConnection: pass the"
                    " one of your open transaction, or open one with client.transaction()"
                )
            if tx.closed:
                raise UsageError("the transaction has ended (its connection is closed)")
            sync = getattr(tx, "sync_connection", None)
        marker = sync.get_transaction() if sync is not None else None
        key = sync if sync is not None else tx
        found = self._states.get(key)
        if found is None or found[0] is not marker:
            found = self._states[key] = (marker, TxState())
        return found[1]

    async def _run(self, sql: str, args: Sequence[Any], tx: Any | None) -> tuple[list[Row], int]:
        if tx is not None:
            conn = await self._connection(tx)
            return await run_on(await self._driver(conn), sql, args)
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await run_on(await self._driver(conn), sql, args)

    async def fetch(self, sql: str, args: Sequence[Any], tx: Any | None) -> list[Row]:
        return (await self._run(sql, args, tx))[0]

    async def execute(self, sql: str, args: Sequence[Any], tx: Any | None) -> int:
        return (await self._run(sql, args, tx))[1]

    def multi_statements(self, tx: Any | None) -> bool:
        return False

    async def fetch_many(self, sql: str, args: Sequence[Any], tx: Any | None) -> list[Row]:
        raise NotImplementedError("SqlAlchemyProvider sends one statement per round trip")

    async def close(self) -> None:
        """The engine belongs to the application; nothing to release."""
