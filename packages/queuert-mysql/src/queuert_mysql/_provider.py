"""The provider seam: how queuert's SQL reaches the MySQL driver the application already uses.

The state adapter writes every statement once, with the ``%s`` placeholders that aiomysql, PyMySQL
and asyncmy share, and hands it to a provider with the arguments and the transaction (``tx``) the
caller passed:

* :class:`AiomysqlProvider` (default): ``tx`` is an ``aiomysql`` connection inside a transaction.
* :class:`~queuert_mysql.SqlAlchemyProvider`: ``tx`` is a SQLAlchemy 2 ``AsyncSession`` or
  ``AsyncConnection`` (``mysql+aiomysql://`` or ``mysql+asyncmy://`` engines).

Without ``tx`` a provider runs the statement on a pooled connection in autocommit mode, never
inside anybody's transaction, so such reads never see uncommitted work.

Transactions run at ``READ COMMITTED``: every statement sees what committed before it started, and
InnoDB takes no gap locks, so concurrent claims and inserts do not block each other on index gaps.
The providers set it on the connections they open or take from a pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import weakref
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from queuert.bounded import Deadlines, bounded, within
from queuert.duration import Duration, to_timedelta
from queuert.errors import TransactionAbortedError, UsageError

__all__ = [
    "AiomysqlProvider",
    "MysqlProvider",
    "Row",
    "TxState",
    "run_on",
    "savepoint_name",
]

TxT = TypeVar("TxT")
T = TypeVar("T")
Row = tuple[Any, ...]

ABORTED_AT_COMMIT = (
    "a statement failed in this transaction, so it was rolled back instead of committed "
    "(roll back to a savepoint to recover from a failed statement)"
)

SESSION_SETUP = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
"""Run once on every connection a provider opens or takes from a pool it was given."""


@dataclass
class TxState:
    """What the adapter tracks about one transaction: its open savepoints and whether a failed
    statement put it into the aborted state (MySQL itself rolls back only the statement; the
    adapter then refuses further work as PostgreSQL does, until the savepoint open at the failure
    rolls back)."""

    depth: int = 0
    """Open savepoints (0: the transaction itself)."""
    aborted: int | None = None
    """Depth at which a statement failed, else ``None``; 0 also after a deadlock, which rolled the
    whole transaction back on the server."""


@runtime_checkable
class MysqlProvider(Protocol[TxT]):
    """What the MySQL state adapter needs from a database driver."""

    def transaction(self) -> AbstractAsyncContextManager[TxT]:
        """A new ``READ COMMITTED`` transaction on a connection of the provider: commit on normal
        exit, roll back on error (and raise :class:`~queuert.errors.TransactionAbortedError`
        instead of committing when its :class:`TxState` is aborted)."""
        ...

    async def fetch(self, sql: str, args: Sequence[Any], tx: TxT | None) -> list[Row]:
        """Run one statement (in ``tx`` when given, else on a pooled autocommit connection) and
        return its rows (empty for statements without a result)."""
        ...

    async def execute(self, sql: str, args: Sequence[Any], tx: TxT | None) -> int:
        """Run one statement and return the number of rows it changed."""
        ...

    def state(self, tx: TxT) -> TxState:
        """The :class:`TxState` of ``tx`` (created on first use)."""
        ...

    def multi_statements(self, tx: TxT | None) -> bool:
        """True if :meth:`fetch_many` may send several statements in one round trip."""
        ...

    async def fetch_many(self, sql: str, args: Sequence[Any], tx: TxT | None) -> list[Row]:
        """Run several ``;``-separated statements in one round trip (only where
        :meth:`multi_statements` says so) and return the rows of the first result set."""
        ...

    async def close(self) -> None:
        """Release what the provider owns (not what the application passed in)."""
        ...


_savepoint_ids = itertools.count(1)


def savepoint_name() -> str:
    return f"queuert_sp_{next(_savepoint_ids)}"


async def run_on(conn: Any, sql: str, args: Sequence[Any]) -> tuple[list[Row], int]:
    """Run one statement on a driver connection with a DB-API style async cursor (aiomysql or
    asyncmy): its rows and its changed-row count."""
    async with conn.cursor() as cur:
        await cur.execute(sql, tuple(args))
        rows = await cur.fetchall() if cur.description is not None else ()
        return list(rows), cur.rowcount


async def run_many(conn: Any, sql: str, args: Sequence[Any]) -> tuple[list[Row], int]:
    """Run several statements sent as one (``;``-separated: one round trip, on a connection that
    allows multi-statements): the rows of the first that has a result set, and the changed-row
    count of the first statement."""
    async with conn.cursor() as cur:
        await cur.execute(sql, tuple(args))
        count = cur.rowcount
        rows = list(await cur.fetchall()) if cur.description is not None else None
        while await cur.nextset():
            if rows is None and cur.description is not None:
                rows = list(await cur.fetchall())
        return rows or [], count


_END_TIMEOUT = 10.0
"""Seconds a COMMIT or ROLLBACK may take before the connection is closed instead."""


async def to_the_end(conn: Any, statement: Awaitable[T]) -> T:
    """Await a COMMIT or ROLLBACK to its end even if the caller is cancelled meanwhile.

    Cancelling a task in the middle of a statement leaves the connection in an unknown state; a
    statement that takes longer than ``_END_TIMEOUT`` closes the connection instead (the server
    then rolls back whatever was not committed). The cancellation is re-raised afterwards.
    """
    task = asyncio.ensure_future(statement)
    cancelled = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _END_TIMEOUT
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            await asyncio.wait({task}, timeout=remaining)
        except asyncio.CancelledError:
            cancelled = True
    if not task.done():
        conn.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task}, timeout=1.0)
    if cancelled:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the cancellation is what the caller gets
        raise asyncio.CancelledError()
    if task.cancelled():
        raise ConnectionError(
            f"the transaction's end did not finish within {_END_TIMEOUT:g} s; its connection was "
            "closed (a COMMIT that did not reach the server is rolled back by it)"
        )
    return task.result()


def aiomysql_open(tx: Any) -> Any:
    """``tx`` if it is an aiomysql connection whose statements run in a transaction;
    :class:`UsageError` otherwise (an object of another kind, a closed connection, or one in
    autocommit mode with no transaction begun, whose statements would each commit on their own)."""
    try:
        closed = tx.closed
        in_transaction = tx.get_transaction_status()
        autocommit = tx.get_autocommit()
    except AttributeError:
        raise UsageError(
            f"tx={tx!r:.80} is not an aiomysql connection: pass the connection of your open"
            " transaction, or open one with client.transaction()"
        ) from None
    if closed:
        raise UsageError("the transaction has ended (its connection is closed)")
    if autocommit and not in_transaction:
        raise UsageError(
            "this aiomysql connection is in autocommit mode with no transaction begun (each"
            " statement would commit on its own): call `await conn.begin()` first, or open one"
            " with client.transaction()"
        )
    return tx


async def give_back(pool: Any, conn: Any) -> None:
    """Release ``conn`` to its aiomysql ``pool`` and, when it is closed, wake the pool's waiters.

    aiomysql wakes a caller waiting for a connection of a full pool (and ``wait_closed``) only when
    an open connection comes back. A dead one (killed by the server, closed after a failed
    statement, or closed by ``release`` because a transaction was still open) frees its place
    silently: with every connection of a busy worker killed at once, all its tasks would wait
    forever. The pool's condition is notified here when nobody holds its lock (taking a free
    asyncio lock does not suspend); a holder is opening a connection, and notifies a waiter itself
    when done."""
    pool.release(conn)
    if not conn.closed:
        return
    condition = getattr(pool, "_cond", None)
    if isinstance(condition, asyncio.Condition) and not condition.locked():
        async with condition:
            condition.notify_all()


_FULL_POOL_RECHECK = 1.0
"""Seconds a caller waits for a full pool before it looks again: aiomysql does not wake its
waiters when a connection dies (``give_back`` does, unless the pool is busy opening one), and a
woken waiter opens the replacement connection with no time limit of its own."""


def _full(pool: Any) -> bool:
    """Whether every connection ``pool`` may open is open and held by a caller."""
    return bool(pool.freesize == 0 and pool.size >= pool.maxsize)


class AiomysqlProvider:
    """Runs the SQL on an ``aiomysql`` pool (``tx`` = an aiomysql connection inside a transaction).

    Build it from a pool you already have (``AiomysqlProvider(pool)``; you close the pool) or let it
    create one (``await AiomysqlProvider.connect(host=..., db=...)``; closed with the adapter).
    Every connection the provider takes from the pool is switched to autocommit mode and
    ``READ COMMITTED`` once (one statement each, on first use); transactions start with ``BEGIN``.
    With ``connect_timeout`` (seconds; set by ``connect``), opening a new pooled connection gives
    up after that long, also when the server accepts it and never answers.
    """

    def __init__(
        self,
        pool: Any,
        *,
        owns_pool: bool = False,
        statement_timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        self.pool = pool
        self._owns_pool = owns_pool
        self._statements = None if statement_timeout is None else Deadlines(statement_timeout)
        """The deadlines of queuert's statements, one timer for all of them: the seconds each
        may wait for its answer (``None``: no limit)."""
        self._connect_timeout = connect_timeout
        """Seconds opening a new pooled connection may take (``None``: no limit)."""
        self._ready: weakref.WeakSet[Any] = weakref.WeakSet()
        self._states: weakref.WeakKeyDictionary[Any, TxState] = weakref.WeakKeyDictionary()

    @classmethod
    async def connect(
        cls,
        *,
        minsize: int = 1,
        maxsize: int = 10,
        statement_timeout: Duration | None = 60.0,
        **connect_options: Any,
    ) -> AiomysqlProvider:
        """A provider over a new ``aiomysql.create_pool(**connect_options)`` (``host``, ``port``,
        ``user``, ``password``, ``db``, ...). Opening the pool gives up after ``connect_timeout``
        seconds (10 unless given) with ``asyncio.TimeoutError``, also when the server accepts the
        connection and never answers (aiomysql's own timeout covers the TCP connect only); so
        does each new connection the pool opens later. A statement of queuert's that gets no answer within ``statement_timeout`` (60 s; ``None``: no
        limit) raises ``asyncio.TimeoutError`` too, and its connection is closed, not reused."""
        import aiomysql

        timeout = (
            None
            if statement_timeout is None
            else to_timedelta(statement_timeout, name="statement_timeout", positive=True)
        )
        connect_options.setdefault("connect_timeout", 10)
        connect_options.setdefault("autocommit", True)
        connect_options.setdefault("charset", "utf8mb4")
        connect_options.setdefault("init_command", SESSION_SETUP)
        pool = await bounded(
            aiomysql.create_pool(minsize=minsize, maxsize=maxsize, **connect_options),
            float(connect_options["connect_timeout"]),
            what="connecting",
            discard=lambda late: late.close(),
        )
        return cls(
            pool,
            owns_pool=True,
            statement_timeout=None if timeout is None else timeout.total_seconds(),
            connect_timeout=float(connect_options["connect_timeout"]),
        )

    def _bounded(self, conn: Any, work: Awaitable[T]) -> Awaitable[T]:
        """``work`` on ``conn``, given up after the statement timeout: the connection is then
        closed (the server rolls back its transaction), so that no one reuses it half-way; the
        same when the caller is cancelled, since the statement's state is then unknown."""
        return within(self._statements, work, conn.close, abort_on_cancel=True)

    async def _prepare(self, conn: Any) -> Any:
        if conn not in self._ready:
            if not conn.get_autocommit():
                await conn.autocommit(True)
            await run_on(conn, SESSION_SETUP, ())
            self._ready.add(conn)
        return conn

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Any]:
        conn = await self._take()
        try:
            yield await self._prepare(conn)
        except asyncio.CancelledError:
            # A statement interrupted half-way leaves the protocol in an unknown state: the
            # connection is closed, not reused (the pool opens a new one).
            conn.close()
            raise
        finally:
            # (the pool closes a connection still inside a transaction instead of keeping it)
            await give_back(self.pool, conn)

    async def _take(self) -> Any:
        """A connection from the pool. Waiting for one that other tasks hold is back-pressure and
        is not limited; opening a new one (aiomysql's ``connect_timeout`` covers the TCP connect
        only, not the server's greeting) gives up after ``connect_timeout`` seconds, so that a
        server that accepts connections and never answers cannot hang a worker, also a caller
        that waited for a full pool and then opens the connection that replaces a dead one."""
        pool = self.pool
        seconds = self._connect_timeout
        if seconds is None or not hasattr(pool, "freesize"):  # another kind: its own limits apply
            return await pool.acquire()
        while True:
            full = _full(pool)
            try:
                return await bounded(
                    pool.acquire(),
                    min(seconds, _FULL_POOL_RECHECK) if full else seconds,
                    what="connecting",
                    discard=pool.release,
                )
            except asyncio.TimeoutError:
                if not (full or _full(pool)):
                    raise  # the pool had room: opening a connection got no answer
                # every connection was held by other tasks: wait on, and look again

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        async with self._acquire() as conn:
            state = self._states[conn] = TxState()
            try:
                await run_on(conn, "BEGIN", ())
            except BaseException:
                conn.close()  # the server rolls back whatever it began
                raise
            try:
                yield conn
            except BaseException:
                # The block's exception must reach the caller unchanged: a dead connection fails
                # the rollback too.
                if not conn.closed:
                    try:
                        await to_the_end(conn, run_on(conn, "ROLLBACK", ()))
                    except BaseException:
                        conn.close()
                raise
            finally:
                self._states.pop(conn, None)
            if state.aborted is not None:
                await to_the_end(conn, run_on(conn, "ROLLBACK", ()))
                raise TransactionAbortedError(ABORTED_AT_COMMIT)
            await to_the_end(conn, run_on(conn, "COMMIT", ()))

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        return self._transaction()

    def state(self, tx: Any) -> TxState:
        aiomysql_open(tx)
        state = self._states.get(tx)
        if state is None:
            state = self._states[tx] = TxState()
        return state

    async def fetch(self, sql: str, args: Sequence[Any], tx: Any | None) -> list[Row]:
        if tx is None:
            async with self._acquire() as conn:
                return (await self._bounded(conn, run_on(conn, sql, args)))[0]
        return (await self._bounded(tx, run_on(tx, sql, args)))[0]

    async def execute(self, sql: str, args: Sequence[Any], tx: Any | None) -> int:
        if tx is None:
            async with self._acquire() as conn:
                return (await self._bounded(conn, run_on(conn, sql, args)))[1]
        return (await self._bounded(tx, run_on(tx, sql, args)))[1]

    def multi_statements(self, tx: Any | None) -> bool:
        return True  # aiomysql connects with CLIENT_MULTI_STATEMENTS

    async def fetch_many(self, sql: str, args: Sequence[Any], tx: Any | None) -> list[Row]:
        if tx is None:
            async with self._acquire() as conn:
                return (await self._bounded(conn, run_many(conn, sql, args)))[0]
        return (await self._bounded(tx, run_many(tx, sql, args)))[0]

    async def close(self) -> None:
        if self._owns_pool:
            self.pool.close()
            await self.pool.wait_closed()
