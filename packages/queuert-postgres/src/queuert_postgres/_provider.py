"""The provider seam: how queuert's SQL reaches the database driver the application already uses.

The state adapter writes every statement once, with PostgreSQL's native ``$1, $2, ...`` placeholders,
and hands it to a provider together with the arguments and the transaction (``tx``) the caller passed.
A provider knows one driver:

* :class:`AsyncpgProvider` (default): ``tx`` is an ``asyncpg`` connection inside a transaction.
* :class:`PsycopgProvider`: ``tx`` is a ``psycopg.AsyncConnection`` (psycopg 3).
* :class:`SqlAlchemyProvider`: ``tx`` is a SQLAlchemy 2 ``AsyncSession`` or ``AsyncConnection``; the SQL runs
  on the session's underlying driver connection (asyncpg or psycopg), inside the session's transaction.

Without ``tx`` a provider runs the statement on a connection of its own (a pooled one that is not inside
anybody's transaction), so such reads never see uncommitted work.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from queuert.bounded import Deadlines, bounded, within
from queuert.duration import Duration, to_timedelta
from queuert.errors import TransactionAbortedError, UsageError
from queuert.sqlalchemy_session import attach_session_commit_hooks

from queuert_postgres._parking import Parking

__all__ = [
    "AsyncpgProvider",
    "PgProvider",
    "PsycopgProvider",
    "Sql",
    "SqlAlchemyProvider",
]

TxT = TypeVar("TxT")
T = TypeVar("T")
Row = Sequence[Any]

_PLACEHOLDER = re.compile(r"\$(\d+)")

ABORTED_AT_COMMIT = (
    "the transaction was aborted by a failed statement and has been rolled back "
    "(roll back to a savepoint to recover from a failed statement)"
)

IN_FAILED_TRANSACTION = "25P02"
"""SQLSTATE of a statement sent in a transaction that a failed statement aborted."""


def in_failed_transaction(exc: BaseException) -> bool:
    """True if ``exc`` is a driver's error for a statement in an aborted transaction (asyncpg and
    psycopg carry the SQLSTATE as ``sqlstate``; SQLAlchemy wraps the driver's error as ``orig``)."""
    for error in (exc, getattr(exc, "orig", None)):
        if getattr(error, "sqlstate", None) == IN_FAILED_TRANSACTION:
            return True
    return False


class Sql:
    """One SQL statement with ``$n`` placeholders, translated lazily for drivers that need another style."""

    __slots__ = ("_format", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._format: tuple[str, tuple[int, ...]] | None = None

    def format_style(self) -> tuple[str, tuple[int, ...]]:
        """The statement in psycopg's ``%s`` style and, per placeholder, the argument index it takes."""
        if self._format is None:
            order: list[int] = []

            def repl(match: re.Match[str]) -> str:
                order.append(int(match.group(1)) - 1)
                return "%s"

            escaped = self.text.replace("%", "%%")
            self._format = (_PLACEHOLDER.sub(repl, escaped), tuple(order))
        return self._format

    def __repr__(self) -> str:
        return f"Sql({self.text[:60]!r}...)"


@runtime_checkable
class PgProvider(Protocol[TxT]):
    """What the PostgreSQL state adapter needs from a database driver."""

    def transaction(self) -> AbstractAsyncContextManager[TxT]:
        """A new transaction on a connection of the provider: commit on normal exit, roll back on error."""
        ...

    async def fetch(self, sql: Sql, args: Sequence[Any], tx: TxT | None) -> list[Row]:
        """Run one statement (in ``tx`` when given, else on the provider's own connection) and return
        its rows (empty for statements without a result)."""
        ...

    async def script(self, sql: str, tx: TxT) -> None:
        """Run a parameterless script of one or more statements in ``tx`` (used for DDL)."""
        ...

    async def close(self) -> None:
        """Release what the provider owns (not what the application passed in)."""
        ...


_savepoint_ids = itertools.count(1)


def savepoint_name() -> str:
    return f"queuert_sp_{next(_savepoint_ids)}"


# -- asyncpg ----------------------------------------------------------------------------------------


def _asyncpg_open(tx: Any) -> Any:
    """``tx`` if it is an asyncpg connection inside an open transaction; :class:`UsageError` otherwise
    (an object of another kind, a connection back in its pool, or one in autocommit, whose
    statements would each commit on their own)."""
    try:
        in_transaction = tx.is_in_transaction()
    except AttributeError:
        raise UsageError(
            f"tx={tx!r:.80} is not an asyncpg connection: pass the connection of your open"
            " transaction, or open one with client.transaction()"
        ) from None
    except Exception as exc:  # asyncpg's InterfaceError: the connection went back to its pool
        raise UsageError(f"the transaction has ended ({exc})") from None
    if not in_transaction:
        raise UsageError(
            "this asyncpg connection has no open transaction (each statement would commit on its"
            " own): pass it inside `async with conn.transaction():`"
        )
    return tx


async def _asyncpg_fetch(conn: Any, sql: Sql, args: Sequence[Any]) -> list[Row]:
    rows: list[Row] = await conn.fetch(sql.text, *args)
    return rows


_END_TIMEOUT = 10.0
"""Seconds a COMMIT or ROLLBACK may take before the connection is terminated instead."""


def _to_the_end(
    conn: Any, statement: Awaitable[T], deadlines: _Deadlines | None = None
) -> Awaitable[T]:
    """Await a transaction's COMMIT or ROLLBACK to its end even if the caller is cancelled meanwhile.

    Cancelling the task that ends a transaction (a worker shutting down cancels twice: once for the
    block, again during its rollback) would otherwise hand the connection back to the pool in the
    middle of the statement, still inside the transaction. The cancellation is re-raised once the
    statement finished; a statement that takes longer than ``_END_TIMEOUT`` terminates the connection
    (the server then rolls back whatever was not committed). ``deadlines``: the provider's, which
    watches the ends of all its transactions with one timer.
    """
    return _ToTheEnd(conn, statement, deadlines if deadlines is not None else _Deadlines())


class _Deadlines(Deadlines):
    """The transaction ends (or, with ``seconds``, the statements) in flight on one provider's
    connections, watched with one timer (see :class:`~queuert.bounded.Deadlines`); a late one has
    its connection terminated. Without ``seconds``, each gets ``_END_TIMEOUT``."""

    __slots__ = ()

    def allowance(self) -> float:
        return _END_TIMEOUT if self.seconds is None else self.seconds


class _ToTheEnd(Generic[T]):
    """The awaitable of :func:`_to_the_end`: drives the statement in the caller's own task (no task
    of its own, which the exactly-once path paid for per job), waiting on each of the driver's
    futures through a :class:`_Shield`. A cancellation of the caller never reaches the driver's
    future and is noted; the statement is driven on to its end, then the cancellation is raised."""

    __slots__ = ("_conn", "_deadlines", "_statement")

    def __init__(self, conn: Any, statement: Awaitable[T], deadlines: _Deadlines) -> None:
        self._conn = conn
        self._statement = statement
        self._deadlines = deadlines

    def __await__(self) -> Generator[Any, None, T]:
        loop = asyncio.get_running_loop()
        late: list[bool] = []
        deadlines = self._deadlines
        key = id(self)
        terminate = self._conn.terminate  # aborts the transport: the statement fails at once
        if not deadlines.add(loop, key, terminate, late):
            deadlines = _Deadlines()
            deadlines.add(loop, key, terminate, late)
        cancelled = False
        inner = self._statement.__await__()
        try:
            try:
                step = inner.send(None)
                while True:
                    if step is None:  # a bare yield: the driver gives the loop a turn
                        try:
                            yield None
                        except asyncio.CancelledError:
                            cancelled = True
                    else:
                        step._asyncio_future_blocking = False
                        while not step.done():
                            try:
                                yield _Shield(step)
                            except asyncio.CancelledError:
                                cancelled = True
                            except Exception:
                                # the future's own error, thrown in by the task's wake-up: the
                                # statement raises it (or handles it) when driven on below
                                pass
                    step = inner.send(None)
            except StopIteration as stop:
                result: T = stop.value
            except BaseException:
                if cancelled:
                    raise asyncio.CancelledError() from None  # the statement's error, retrieved
                if late:
                    raise _late_error() from None
                raise
        finally:
            deadlines.remove(key)
        if cancelled:
            raise asyncio.CancelledError()
        if late:
            raise _late_error()
        return result


class _Shield:
    """What :class:`_ToTheEnd` hands the task to wait on instead of a driver's future: the task's
    wake-up is added to the driver's future itself (no proxy future, no extra loop callback per
    await), but ``Task.cancel()`` reaches only this object, which refuses; the task then takes
    the cancellation at its next step, once the driver's future is done (what an asyncio task
    does when the future it waits on does not cancel, on every Python queuert supports). The
    driver's future is never cancelled: a cancelled asyncpg future would leave its connection
    mid-statement."""

    __slots__ = ("_asyncio_future_blocking", "_future")

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self._future = future
        self._asyncio_future_blocking = True

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._future.get_loop()

    def add_done_callback(self, fn: Callable[[Any], object], *, context: Any = None) -> None:
        self._future.add_done_callback(fn, context=context)

    def remove_done_callback(self, fn: Callable[[Any], object]) -> int:
        return self._future.remove_done_callback(fn)

    def cancel(self, msg: Any = None) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> Any:
        return self._future.result()

    def exception(self) -> BaseException | None:
        return self._future.exception()


def _late_error() -> ConnectionError:
    return ConnectionError(
        f"the transaction's end did not finish within {_END_TIMEOUT:g} s; its connection was "
        "terminated (a COMMIT that did not reach the server is rolled back by it)"
    )


def _late_statement(statements: Deadlines) -> asyncio.TimeoutError:
    """What a statement of queuert's that was aborted past the allowance of ``statements`` raises
    (as :func:`~queuert.bounded.within` does)."""
    return asyncio.TimeoutError(f"a statement got no answer within {statements.allowance():g} s")


def _within(deadlines: Deadlines | None, conn: Any, statement: Awaitable[T]) -> Awaitable[T]:
    """Await a statement of queuert's on asyncpg connection ``conn``; past the allowance of
    ``deadlines`` (``None``: no limit) the connection is terminated and ``TimeoutError`` raised
    (the server rolls back the connection's transaction, if any, and the pool replaces it)."""
    return within(deadlines, statement, conn.terminate)


async def _keep_session(conn: Any) -> None:
    """asyncpg pool ``reset`` hook that keeps the session (asyncpg has already rolled back an open
    transaction and dropped listeners when it calls this)."""


class _AsyncpgTransaction:
    """``async with provider.transaction() as conn``: a pooled asyncpg connection inside ``BEGIN``,
    committed on normal exit (protected from cancellation, see :func:`_to_the_end`), rolled back on
    error, then kept by the provider for its next use (see :mod:`queuert_postgres._parking`) or
    handed back to the pool.

    A class rather than an ``@asynccontextmanager``: the exactly-once path opens one per job, and an
    async generator costs several microseconds more on each entry and exit.
    """

    __slots__ = ("_conn", "_deadlines", "_parking", "_pool", "_statements")

    def __init__(
        self,
        pool: Any,
        deadlines: _Deadlines,
        parking: Parking | None,
        statements: Deadlines | None,
    ) -> None:
        self._pool = pool
        self._deadlines = deadlines
        self._parking = parking
        self._statements = statements
        self._conn: Any = None

    async def __aenter__(self) -> Any:
        pool = self._pool
        parking = self._parking
        if parking is None:
            conn = await pool.acquire()
        else:
            # a kept connection without a coroutine of the parking's (the common case)
            conn = parking.take()
            if conn is None:
                conn = await parking.acquire()
        statements = self._statements
        try:
            if statements is None:
                await conn.execute("BEGIN")
            else:
                # _within without its coroutine, and Deadlines.watch without its Watch (every
                # transaction)
                late: list[bool] = []
                key = id(late)
                if not statements.add(asyncio.get_running_loop(), key, conn.terminate, late):
                    await _within(statements, conn, conn.execute("BEGIN"))
                else:
                    try:
                        await conn.execute("BEGIN")
                    except BaseException as exc:
                        if late and not isinstance(exc, asyncio.CancelledError):
                            raise _late_statement(statements) from None
                        raise
                    finally:
                        statements.remove(key)
        except BaseException:
            # Interrupted (cancelled) with the BEGIN on its way: the server opens the transaction
            # all the same, and asyncpg would roll it back when the pool takes the connection
            # back, reporting an error. Answered already: roll back here. Not yet: the state is
            # unknown until it is, so close the connection (the server rolls back, the pool
            # opens a new one). Both only on this rare path; the BEGIN itself stays one plain
            # round trip (making it uncancellable like COMMIT costs ~100 us per transaction).
            try:
                with contextlib.suppress(Exception):
                    if conn.is_in_transaction():
                        await _to_the_end(conn, conn.execute("ROLLBACK"), self._deadlines)
                    elif not conn.is_closed():
                        conn.terminate()
            finally:
                await (pool.release(conn) if parking is None else parking.release(conn))
            raise
        self._conn = conn
        return conn

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        conn, self._conn = self._conn, None
        ended = False
        try:
            if exc_type is not None:
                # The block's exception must reach the caller unchanged: a dead connection can
                # fail the rollback (or even is_closed(), once asyncpg released it to the pool).
                with contextlib.suppress(Exception):
                    if not conn.is_closed():
                        await _to_the_end(conn, conn.execute("ROLLBACK"), self._deadlines)
                        ended = True
                return False
            # _to_the_end, without its call
            status = await _ToTheEnd(conn, conn.execute("COMMIT"), self._deadlines)
            ended = True
        finally:
            parking = self._parking
            if parking is None:
                await self._pool.release(conn)
            elif not ended or not parking.keep(conn, detach=True):
                await parking.release(conn)
        if status != "COMMIT":
            raise TransactionAbortedError(ABORTED_AT_COMMIT)
        return False


class AsyncpgProvider:
    """Runs the SQL on an ``asyncpg`` pool (``tx`` = an asyncpg connection inside a transaction).

    Build it from a pool you already have (``AsyncpgProvider(pool)``; you close the pool) or let it
    create one (``await AsyncpgProvider.connect(dsn)``; closed with the adapter). A pool it creates
    gives up connecting after ``connect_timeout`` (10 s), and the provider gives up waiting for a
    statement of queuert's after ``statement_timeout`` (60 s; ``None``: no limit), raising
    ``TimeoutError``, so a server that accepts connections but never answers cannot hang a worker.
    A connection that timed out is terminated, not reused (its transaction, if any, is rolled back
    by the server; the pool opens a new one). The provider watches all of its statements with one
    timer rather than asyncpg's ``command_timeout`` (a timer per statement), so the statements you
    run yourself on its connections (``ctx.tx`` in a handler) are not bounded by it: pass them
    asyncpg's ``timeout=`` where they need one. ``AsyncpgProvider(pool, statement_timeout=...)``
    bounds queuert's statements on a pool you pass the same way. asyncpg prepares and
    caches statements; behind PgBouncer in transaction pooling mode pass ``prepared_statements=False``
    to :meth:`connect` (or create your pool with ``statement_cache_size=0``).

    A pool created by :meth:`connect` does not run asyncpg's session reset (``RESET ALL``, ``UNLISTEN
    *``, advisory unlock: one more round trip) when a connection returns to it: queuert's statements
    leave no session state, and an open transaction is still rolled back. If your code changes session
    state on these connections (``SET`` rather than ``SET LOCAL``, ``LISTEN``, session advisory
    locks), pass ``reset_sessions=True``.

    A provider whose pool it created (or built with ``keep_connections=True``) keeps the connection
    of a finished transaction or statement for its next transaction or statement instead of handing
    it back to the pool, and hands it straight to a caller of its own waiting for one while the pool
    has none left (the exactly-once path opens a transaction per job, a loop of ``start_chain``
    calls a statement per start). A connection it keeps unused goes back to the pool within 0.1 s,
    and all of them on :meth:`close`; the connection object a transaction yields fails once the
    transaction has ended, as after a release. Not with ``reset_sessions=True`` or
    ``keep_connections=False``, nor by default on a pool you pass (whose own reset would be skipped
    between queuert's transactions).

    Without kept connections, statements without ``tx`` that follow one another run on one pooled
    connection kept between them (the lane), handed back to the pool once an event loop iteration
    passes without one, or at once when the pool has no other connection to give: an acquire and
    release of asyncpg's pool cost more CPU than a one-row ``INSERT``'s round trip. Concurrent
    statements take other connections of the pool as before.

    It also sets ``plan_cache_mode = force_generic_plan`` on its connections: queuert's statements
    take arrays and have one good plan whatever the arguments, but PostgreSQL's default kept
    re-planning the claim on every execution (about 0.4 ms of its 1.3 ms here; ``tools/bench``
    processing and batch start both about 6% faster without that). Pass ``generic_plans=False`` if
    your own statements on these connections need plans made for each call's values.
    """

    def __init__(
        self,
        pool: Any,
        *,
        owns_pool: bool = False,
        keep_connections: bool | None = None,
        statement_timeout: Duration | None = None,
    ) -> None:
        self.pool = pool
        self._owns_pool = owns_pool
        self._deadlines = _Deadlines()
        self._statements = (
            None
            if statement_timeout is None
            else Deadlines(
                to_timedelta(
                    statement_timeout, name="statement_timeout", positive=True
                ).total_seconds()
            )
        )
        """The deadlines of queuert's statements on this provider (``None``: no limit)."""
        if keep_connections is None:
            keep_connections = owns_pool
        self._parking = Parking(pool) if keep_connections else None
        """Connections kept between transactions and statements (see
        :mod:`queuert_postgres._parking`), or ``None``: each goes back to the pool at once."""
        self._lane: Any = None
        """The pooled connection kept for autocommit statements that follow one another (see
        :meth:`fetch`), or ``None``."""
        self._lane_busy = False
        self._lane_check: asyncio.Handle | None = None
        self._returning: set[asyncio.Task[None]] = set()
        """Tasks handing the lane back to the pool (awaited by :meth:`close`)."""
        self._closed = False

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        prepared_statements: bool = True,
        reset_sessions: bool = False,
        generic_plans: bool = True,
        keep_connections: bool = True,
        connect_timeout: Duration = 10.0,
        statement_timeout: Duration | None = 60.0,
        **pool_options: Any,
    ) -> AsyncpgProvider:
        import asyncpg

        pool_options.setdefault(
            "timeout", to_timedelta(connect_timeout, name="connect_timeout").total_seconds()
        )
        if not prepared_statements:
            pool_options.setdefault("statement_cache_size", 0)
        if not reset_sessions:
            pool_options.setdefault("reset", _keep_session)
        if generic_plans:
            settings = dict(pool_options.get("server_settings") or {})
            settings.setdefault("plan_cache_mode", "force_generic_plan")
            pool_options["server_settings"] = settings
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, **pool_options)
        return cls(
            pool,
            owns_pool=True,
            keep_connections=keep_connections and not reset_sessions,
            statement_timeout=statement_timeout,
        )

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        return _AsyncpgTransaction(self.pool, self._deadlines, self._parking, self._statements)

    async def _acquire(self) -> Any:
        if self._parking is None:
            return await self.pool.acquire()
        return await self._parking.acquire()

    async def _give_back(self, conn: Any) -> None:
        if self._parking is None:
            await self.pool.release(conn)
        else:
            await self._parking.give_back(conn, detach=False)

    async def _release(self, conn: Any) -> None:
        if self._parking is None:
            await self.pool.release(conn)
        else:
            await self._parking.release(conn)

    async def fetch(self, sql: Sql, args: Sequence[Any], tx: Any | None) -> list[Row]:
        """Without ``tx``: on a connection the provider keeps (see :mod:`queuert_postgres._parking`)
        or, without kept connections, on the lane: a pooled connection kept while autocommit
        statements follow one another (a statement awaited right after another, as a loop of
        ``start_chain`` calls does), and handed back to the pool once an iteration of the event loop
        passes without one. An acquire and release of asyncpg's pool cost more CPU than a one-row
        INSERT's own round trip. A statement that finds the lane in use takes a connection of the
        pool as before; one that fails or is cancelled hands its connection back to the pool, which
        cleans it up."""
        statements = self._statements
        if tx is not None:
            conn = _asyncpg_open(tx)
            if statements is None:
                tx_rows: list[Row] = await conn.fetch(sql.text, *args)
                return tx_rows
            # _within without its coroutine, and Deadlines.watch without its Watch: every
            # statement in a transaction (the exactly-once path's completion)
            late: list[bool] = []
            key = id(late)
            if not statements.add(asyncio.get_running_loop(), key, conn.terminate, late):
                return await _within(statements, conn, conn.fetch(sql.text, *args))
            try:
                tx_rows = await conn.fetch(sql.text, *args)
            except BaseException as exc:
                if late and not isinstance(exc, asyncio.CancelledError):
                    raise _late_statement(statements) from None
                raise
            finally:
                statements.remove(key)
            return tx_rows
        parking = self._parking
        if parking is not None and not self._closed:
            # the kept connection of the last statement or transaction, taken and kept again
            # with no await in between: no lane to hand back, no event loop turn to wait for
            conn = parking.take()
            if conn is None:
                conn = await parking.acquire()
            try:
                rows: list[Row] = await _within(statements, conn, conn.fetch(sql.text, *args))
            except BaseException:
                await parking.release(conn)
                raise
            if not parking.keep(conn, detach=False):
                await parking.release(conn)
            return rows
        if self._lane_busy or self._closed:
            async with self.pool.acquire() as other:
                return await _within(statements, other, other.fetch(sql.text, *args))
        self._lane_busy = True
        conn = self._lane
        try:
            if conn is None:
                conn = self._lane = await self._acquire()
            rows = await _within(statements, conn, conn.fetch(sql.text, *args))
        except BaseException:
            if conn is not None:
                self._lane = None
                await self._release(conn)
            raise
        finally:
            self._lane_busy = False
        if self._closed_meanwhile() or self._pool_exhausted():
            # close() left the lane to this statement, or others may wait for a connection: the
            # lane goes back now, lest statements in a row keep it from them for good
            self._lane = None
            await self._give_back(conn)
        elif self._lane_check is None:
            self._lane_check = asyncio.get_running_loop().call_soon(self._return_idle_lane)
        return rows

    def _closed_meanwhile(self) -> bool:
        return self._closed

    def _pool_exhausted(self) -> bool:
        """Whether every connection the pool may open is open and taken (the lane included): a
        caller may be waiting for one."""
        pool = self.pool
        queue = getattr(pool, "_queue", None)
        if queue is not None:  # asyncpg's free holders: empty when every one is taken
            return bool(queue.empty())
        return bool(pool.get_idle_size() == 0 and pool.get_size() >= pool.get_max_size())

    def _return_idle_lane(self) -> None:
        """An event loop iteration after a statement on the lane: hand the lane back to the pool
        unless another statement has taken it meanwhile (its end schedules the next check)."""
        self._lane_check = None
        if self._lane_busy or self._lane is None:
            return
        conn, self._lane = self._lane, None
        if self._parking is not None and self._parking.keep(conn, detach=False):
            return
        task = asyncio.get_running_loop().create_task(self._release(conn))
        self._returning.add(task)
        task.add_done_callback(self._returning.discard)

    async def script(self, sql: str, tx: Any) -> None:
        conn = _asyncpg_open(tx)
        await _within(self._statements, conn, conn.execute(sql))

    async def close(self) -> None:
        """Hand the lane back (a statement still running on it does so when it ends), then close
        the pool if this provider created it."""
        self._closed = True
        if self._lane_check is not None:
            self._lane_check.cancel()
            self._lane_check = None
        if self._lane is not None and not self._lane_busy:
            conn, self._lane = self._lane, None
            await self.pool.release(conn)
        while self._returning:
            await asyncio.gather(*self._returning, return_exceptions=True)
        if self._parking is not None:
            await self._parking.close()
        if self._owns_pool:
            await self.pool.close()


# -- psycopg 3 --------------------------------------------------------------------------------------


def _psycopg_open(tx: Any) -> Any:
    """``tx`` if it is a psycopg async connection that runs statements in a transaction;
    :class:`UsageError` otherwise (an object of another kind, a closed connection, or one in
    autocommit with no transaction open, whose statements would each commit on their own)."""
    try:
        closed, autocommit, status = tx.closed, tx.autocommit, tx.info.transaction_status
    except AttributeError:
        raise UsageError(
            f"tx={tx!r:.80} is not a psycopg connection: pass the connection of your open"
            " transaction, or open one with client.transaction()"
        ) from None
    if closed:
        raise UsageError("the transaction has ended (its connection is closed)")
    if autocommit and status == 0:  # TransactionStatus.IDLE
        raise UsageError(
            "this psycopg connection is in autocommit with no open transaction (each statement"
            " would commit on its own): pass it inside `async with conn.transaction():`"
        )
    return tx


async def _psycopg_fetch(
    conn: Any, sql: Sql, args: Sequence[Any], prepare: bool | None
) -> list[Row]:
    text, order = sql.format_style()
    params = [args[i] for i in order]
    async with conn.cursor() as cur:
        await cur.execute(text, params, prepare=prepare)
        if cur.description is None:
            return []
        rows: list[Row] = await cur.fetchall()
        return rows


async def _asyncpg_check_not_aborted(conn: Any) -> None:
    """Raise TransactionAbortedError if the transaction of asyncpg connection ``conn`` is aborted
    (one round trip: a statement there fails with SQLSTATE 25P02)."""
    try:
        await conn.execute("SELECT 1")
    except Exception as exc:
        if in_failed_transaction(exc):
            raise TransactionAbortedError(ABORTED_AT_COMMIT) from exc
        raise


def _psycopg_in_error(conn: Any) -> bool:
    from psycopg.pq import TransactionStatus

    return bool(conn.info.transaction_status == TransactionStatus.INERROR)


def _close_at_once(conn: Any) -> None:
    """Close a connection that arrived after its caller gave up (no one will use it)."""
    conn.pgconn.finish()


class _PsycopgPool:
    """A minimal pool of autocommit ``psycopg.AsyncConnection`` objects (used when no pool is given)."""

    def __init__(self, conninfo: str, max_size: int, connect_timeout: float) -> None:
        self._conninfo = conninfo
        self._connect_timeout = connect_timeout
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(max_size)
        self._closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        import psycopg

        async with self._slots:
            conn: Any = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = await bounded(
                    psycopg.AsyncConnection.connect(self._conninfo, autocommit=True),
                    self._connect_timeout,
                    what="connecting",
                    discard=_close_at_once,
                )
            healthy = False
            try:
                yield conn
                healthy = True
            finally:
                from psycopg.pq import TransactionStatus

                if (
                    healthy
                    and not self._closed
                    and not conn.closed
                    and conn.info.transaction_status == TransactionStatus.IDLE
                ):
                    self._idle.append(conn)
                else:
                    with contextlib.suppress(Exception):
                        await conn.close()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close()


class PsycopgProvider:
    """Runs the SQL with psycopg 3 (``tx`` = a ``psycopg.AsyncConnection`` inside a transaction).

    Pass ``conninfo`` (the provider keeps a small pool of its own autocommit connections) or ``pool``,
    any object with an ``async with pool.connection() as conn`` method (e.g. ``psycopg_pool``'s
    ``AsyncConnectionPool`` whose connections are in autocommit mode). ``prepare=False`` disables
    server-side prepared statements (PgBouncer transaction pooling). The provider's own connections
    give up connecting after ``connect_timeout`` (10 s) and waiting for a statement of queuert's after
    ``statement_timeout`` (60 s; ``None``: no limit), raising ``TimeoutError``; a connection that timed
    out is closed, not reused (its transaction, if any, is lost with it). A ``pool`` you pass keeps
    its own settings.
    """

    def __init__(
        self,
        conninfo: str | None = None,
        *,
        pool: Any = None,
        max_size: int = 10,
        prepare: bool | None = None,
        connect_timeout: Duration = 10.0,
        statement_timeout: Duration | None = 60.0,
    ) -> None:
        if (conninfo is None) == (pool is None):
            raise UsageError("PsycopgProvider needs exactly one of conninfo or pool")
        seconds = to_timedelta(connect_timeout, name="connect_timeout", positive=True)
        self._statement_timeout = (
            None
            if statement_timeout is None or conninfo is None
            else to_timedelta(
                statement_timeout, name="statement_timeout", positive=True
            ).total_seconds()
        )
        self._own_pool = (
            _PsycopgPool(conninfo, max_size, seconds.total_seconds())
            if conninfo is not None
            else None
        )
        self.pool: Any = self._own_pool if self._own_pool is not None else pool
        self._prepare = False if prepare is False else None

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        async with self.pool.connection() as conn, conn.transaction():
            yield conn
            if _psycopg_in_error(conn):
                raise TransactionAbortedError(ABORTED_AT_COMMIT)

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        return self._transaction()

    async def fetch(self, sql: Sql, args: Sequence[Any], tx: Any | None) -> list[Row]:
        if tx is None:
            async with self.pool.connection() as conn:
                return await self._bounded(conn, _psycopg_fetch(conn, sql, args, self._prepare))
        conn = _psycopg_open(tx)
        return await self._bounded(conn, _psycopg_fetch(conn, sql, args, self._prepare))

    async def script(self, sql: str, tx: Any) -> None:
        conn = _psycopg_open(tx)
        await self._bounded(conn, conn.execute(sql))

    async def _bounded(self, conn: Any, work: Awaitable[T]) -> T:
        """``work`` on ``conn``, given up after the statement timeout (own connections only): the
        connection is then closed, so that no one reuses it in an unknown state. (A cancelled
        caller cancels the statement: psycopg cancels the query on the server.)"""
        return await bounded(
            work, self._statement_timeout, what="a statement", on_timeout=conn.close
        )

    async def close(self) -> None:
        if self._own_pool is not None:
            await self._own_pool.close()


# -- SQLAlchemy 2 (async) ---------------------------------------------------------------------------


class SqlAlchemyProvider:
    """Runs the SQL inside SQLAlchemy 2 async transactions (``tx`` = ``AsyncSession`` or ``AsyncConnection``).

    Built from the application's ``AsyncEngine`` (``postgresql+asyncpg://`` or
    ``postgresql+psycopg://``). Statements go straight to the driver connection under the session, in
    the session's transaction, so a rollback of the session also removes the jobs. ``transaction()``
    yields an ``AsyncConnection`` of ``engine.begin()``.
    """

    def __init__(self, engine: Any, *, prepare: bool | None = None) -> None:
        self.engine = engine
        self._prepare = False if prepare is False else None
        self._failed: weakref.WeakSet[Any] = weakref.WeakSet()
        """asyncpg connections on which a statement of ours failed inside a transaction. asyncpg
        cannot tell whether that transaction is aborted (and its COMMIT then silently rolls back),
        so :meth:`_transaction` asks the server before committing one of them."""

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
        conn = await self.engine.connect()
        try:
            transaction = await conn.begin()
            try:
                yield conn
                kind, driver = await self._driver(conn)
                if kind == "psycopg" and _psycopg_in_error(driver):
                    raise TransactionAbortedError(ABORTED_AT_COMMIT)
                if kind == "asyncpg" and driver in self._failed:
                    self._failed.discard(driver)
                    await _asyncpg_check_not_aborted(driver)
            except BaseException:
                # Keep the block's exception: rolling back on a dead connection raises the
                # driver's own error, which must not replace it.
                with contextlib.suppress(Exception):
                    await transaction.rollback()
                raise
            await transaction.commit()
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        return self._transaction()

    async def _driver(self, tx: Any) -> tuple[str, Any]:
        """The driver connection under ``tx``, with the transaction begun on the server."""
        conn = tx
        if hasattr(tx, "sync_session"):  # AsyncSession
            conn = await tx.connection()
        if not hasattr(conn, "get_raw_connection"):
            raise UsageError(
                f"tx={tx!r:.80} is not a SQLAlchemy AsyncSession or AsyncConnection: pass the one"
                " of your open transaction, or open one with client.transaction()"
            )
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        module = type(driver).__module__
        if module.startswith("asyncpg"):
            if conn.in_transaction() and not driver.is_in_transaction():
                # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with its first statement.
                await conn.exec_driver_sql("SELECT 1")
            return "asyncpg", driver
        if module.startswith("psycopg"):
            return "psycopg", driver
        raise UsageError(f"SqlAlchemyProvider supports asyncpg and psycopg engines, not {module}")

    async def _run(self, conn: Any, sql: Sql, args: Sequence[Any]) -> list[Row]:
        kind, driver = await self._driver(conn)
        if kind == "asyncpg":
            try:
                return await _asyncpg_fetch(driver, sql, args)
            except Exception:
                self._failed.add(driver)
                raise
        return await _psycopg_fetch(driver, sql, args, self._prepare)

    async def fetch(self, sql: Sql, args: Sequence[Any], tx: Any | None) -> list[Row]:
        if tx is not None:
            return await self._run(tx, sql, args)
        async with self.engine.connect() as conn:
            kind, driver = await self._driver(conn)
            if kind == "asyncpg":  # not in a transaction: the statement commits by itself
                return await _asyncpg_fetch(driver, sql, args)
            try:
                rows = await _psycopg_fetch(driver, sql, args, self._prepare)
            except BaseException:
                with contextlib.suppress(Exception):
                    await driver.rollback()
                raise
            await driver.commit()
            return rows

    async def script(self, sql: str, tx: Any) -> None:
        kind, driver = await self._driver(tx)
        try:
            await driver.execute(sql)
        except Exception:
            if kind == "asyncpg":
                self._failed.add(driver)
            raise

    async def close(self) -> None:
        """The engine belongs to the application; nothing to release."""
