"""The connections of one SQLite database: one writer, a pool of readers, and how operations run.

Concurrency model
    SQLite allows one writer at a time per database file. The provider keeps exactly one writer
    connection per process and serialises its use with an :class:`asyncio.Lock`: a transaction holds
    the lock from ``transaction()`` entry to exit, an operation without a transaction holds it for
    one round trip. Writes take SQLite's write lock up front (``BEGIN IMMEDIATE``), so a transaction
    never fails half-way when upgrading a read lock, and ``busy_timeout`` plus bounded retries with
    backoff absorb other processes holding the lock. Reads without a transaction go to reader
    connections; in WAL mode they see the last committed state and never wait for the writer (read
    isolation).

Round trips
    Each connection runs on its own thread (aiosqlite). Crossing to that thread is the expensive part,
    so every adapter operation is *one* hop: a plain function that executes all its statements on the
    connection's thread. Inside a transaction, ``BEGIN IMMEDIATE`` and savepoint statements are queued
    and sent together with the next operation (an empty transaction or an unused savepoint costs no
    round trip at all). So are writes whose result is known without asking SQLite (chain starts with
    a fresh id, see :meth:`SqliteProvider.defer_write`): a transaction that only starts chains is
    one hop, ``BEGIN IMMEDIATE``, the INSERT and ``COMMIT`` together.

Writes on the event loop's thread
    The hop costs more than a short write itself: waking the writer's thread, then waking the event
    loop with the result. So a short write of the provider's own (``run_write(fn, inline=True)``
    without ``tx``: chain starts, a single completion) runs directly on the event loop's thread
    when it cannot wait for anything (see :meth:`SqliteProvider.inline_possible`): WAL with
    background checkpoints (a commit neither copies pages back nor fsyncs) and ``synchronous``
    ``OFF`` or ``NORMAL``, or a private in-memory database; the write lock free and the writer's
    thread with no call queued or running. ``BEGIN IMMEDIATE`` then fails at once if another
    process holds the file's write lock (the writer's busy timeout is 0 in WAL mode), and the write
    goes to the thread, which polls for the lock. The event loop is held for the statements' CPU
    time, never for a lock or an fsync, and gets a turn after a few such writes in a row.

The pieces live in their own modules: the options (``_options``), the driver and its errors
(``_driver``), a connection on its thread (``_connection``), waiting for a busy lock (``_busy``) and
the transaction object with its savepoints (``_transaction``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import traceback
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from types import ModuleType
from typing import Any, TypeVar

from queuert.errors import StateAdapterClosedError, TransactionAbortedError, UsageError

from queuert_sqlite._busy import BEGIN, backoff, begin_immediate, retry_busy
from queuert_sqlite._connection import ThreadConnection, setup_connection
from queuert_sqlite._driver import is_busy, load_driver
from queuert_sqlite._options import SqliteOptions
from queuert_sqlite._sqlalchemy import SessionTransactions, is_session
from queuert_sqlite._transaction import (
    Deferred,
    SavepointBlock,
    SqliteConnection,
    TransactionBlock,
    in_savepoint,
)

__all__ = ["SqliteProvider"]

T = TypeVar("T")

_INLINE_STREAK = 16
"""Writes run on the event loop's thread one after another without the loop getting a turn (a task
starting chains in a loop never waits): after this many, the next one first yields to the loop."""

logger = logging.getLogger("queuert.sqlite")

_ROLLED_BACK = "SQLite rolled this transaction back after an error (disk full, I/O error, ...)"


class SqliteProvider:
    """The connections of one database: a writer, readers, transactions and busy handling.

    Open with :meth:`open`; share one provider per database per process.
    """

    def __init__(
        self,
        database: str,
        *,
        uri: bool,
        memory: bool,
        options: SqliteOptions,
        writer: ThreadConnection,
        readers: list[ThreadConnection],
        checkpointer: ThreadConnection | None = None,
    ) -> None:
        self.database = database
        self.options = options
        self.memory = memory
        self.uri = uri
        self._writer = writer
        self._readers = readers
        self._idle: asyncio.Queue[ThreadConnection] = asyncio.Queue()
        for reader in readers:
            self._idle.put_nowait(reader)
        self._write_lock = asyncio.Lock()
        self._owner: SqliteConnection | None = None
        """The open transaction (it holds the write lock), if any."""
        self._closed = False
        self.journal_mode = ""
        self.sqlite_version = sqlite3.sqlite_version
        self.dbapi: ModuleType = sqlite3
        """The DB-API module in use (its exception classes are the ones operations raise)."""
        self._poll_begin = False
        self._checkpointer = checkpointer
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._last_checkpoint = 0.0
        self._inline = False
        """Short writes may run on the event loop's thread (see :meth:`inline_possible`)."""
        self._streak = 0
        """Writes run on the event loop's thread since the loop last had a turn."""
        self._sessions = SessionTransactions(database, memory=memory)
        """Runs operations whose ``tx`` is a SQLAlchemy async session (see ``_sqlalchemy``)."""

    # -- opening and closing ------------------------------------------------------------------------

    @classmethod
    async def open(cls, database: str, options: SqliteOptions | None = None) -> SqliteProvider:
        """Connect to ``database`` (a path, ``":memory:"`` or a ``file:`` URI).

        ``":memory:"`` gives a private in-memory database served by the writer connection alone.
        """
        options = options or SqliteOptions()
        dbapi = load_driver(options.driver)
        memory = database == ":memory:" or (
            database.startswith("file:") and ("mode=memory" in database or ":memory:" in database)
        )
        uri = database.startswith("file:")
        reader_count = 0 if memory else options.readers
        journal = "MEMORY" if memory else options.journal_mode.upper()
        modes: list[str] = []
        # the writer may be used from the event loop's thread (only when it is idle: see run_write)
        private_memory = memory and (database == ":memory:" or "cache=shared" not in database)
        may_inline = options.inline_writes and (
            private_memory
            or (
                journal == "WAL"
                and options.checkpoint_interval is not None
                and options.synchronous.upper() in ("OFF", "NORMAL")
            )
        )

        def writer_setup(raw: sqlite3.Connection) -> None:
            setup_connection(raw, options)

            def set_journal() -> None:
                row = raw.execute(f"PRAGMA journal_mode = {journal}").fetchone()
                modes.append(str(row[0]).upper() if row else "")

            retry_busy(set_journal, options.busy_retries, "set journal mode")
            if modes and modes[0] == "WAL":
                # In WAL mode only BEGIN IMMEDIATE ever waits on the writer; the provider polls
                # for it itself (see _begin_on_thread), so SQLite's own handler is switched off.
                raw.execute("PRAGMA busy_timeout = 0")
                if options.checkpoint_interval is not None:
                    raw.execute("PRAGMA wal_autocheckpoint = 0")  # see _checkpoint

        writer = await ThreadConnection.open(
            database,
            uri=uri,
            options=options,
            role="writer",
            setup=writer_setup,
            dbapi=dbapi,
            any_thread=may_inline,
        )
        readers: list[ThreadConnection] = []
        checkpointer: ThreadConnection | None = None
        try:
            if not memory and modes and modes[0] != journal:
                logger.warning(
                    "sqlite journal_mode %s requested but the database uses %s",
                    journal,
                    modes[0],
                    extra={"queuert_database": database, "queuert_journal_mode": modes[0]},
                )

            def reader_setup(raw: sqlite3.Connection) -> None:
                setup_connection(raw, options)
                raw.execute("PRAGMA query_only = ON")

            for _ in range(reader_count):
                readers.append(
                    await ThreadConnection.open(
                        database,
                        uri=uri,
                        options=options,
                        role="reader",
                        setup=reader_setup,
                        dbapi=dbapi,
                    )
                )
            if modes and modes[0] == "WAL" and options.checkpoint_interval is not None:
                checkpointer = await ThreadConnection.open(
                    database,
                    uri=uri,
                    options=options,
                    role="checkpointer",
                    setup=lambda raw: setup_connection(raw, options),
                    dbapi=dbapi,
                )
        except BaseException:
            for conn in (*readers, writer):
                await conn.close()
            raise
        provider = cls(
            database,
            uri=uri,
            memory=memory,
            options=options,
            writer=writer,
            readers=readers,
            checkpointer=checkpointer,
        )
        provider.dbapi = dbapi
        provider.sqlite_version = str(dbapi.sqlite_version)
        provider.journal_mode = modes[0] if modes else ""
        provider._poll_begin = provider.journal_mode == "WAL"
        provider._inline = may_inline and (private_memory or provider.journal_mode == "WAL")
        return provider

    @property
    def inline_possible(self) -> bool:
        """Short writes run on the event loop's thread when the writer is idle: ``inline_writes``
        is on, and the database is in WAL mode with background checkpoints and ``synchronous``
        ``OFF`` or ``NORMAL`` (a commit is a write to the OS's page cache), or a private in-memory
        database."""
        return self._inline

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Close every connection (idempotent). Later use raises StateAdapterClosedError."""
        if self._closed:
            return
        self._closed = True
        task = self._checkpoint_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conns = [*self._readers, self._writer]
        if self._checkpointer is not None:
            conns.append(self._checkpointer)
        errors: list[BaseException] = []
        for conn in conns:
            try:
                await conn.close()
            except Exception as exc:  # pragma: no cover - closing a healthy connection
                errors.append(exc)
        if errors:  # pragma: no cover
            raise errors[0]

    def _check_open(self) -> None:
        if self._closed:
            raise StateAdapterClosedError()

    # -- background checkpoints ---------------------------------------------------------------------

    def _committed(self) -> None:
        """After a commit: start a background checkpoint if one is due (and none is running)."""
        if self._checkpointer is None or self._closed:
            return
        task = self._checkpoint_task
        if task is not None and not task.done():
            return
        loop = asyncio.get_running_loop()
        interval = self.options.checkpoint_interval or 0.0
        if loop.time() - self._last_checkpoint < interval:
            return
        self._last_checkpoint = loop.time()
        self._checkpoint_task = loop.create_task(
            self._checkpoint(), name="queuert_sqlite:checkpoint"
        )

    async def _checkpoint(self) -> None:
        """``PRAGMA wal_checkpoint(PASSIVE)`` on the checkpointer's own connection and thread.

        PASSIVE never waits for readers or writers: it copies what it can, and SQLite starts the
        WAL over once a checkpoint has caught up with it. Every process on the file runs its own;
        SQLite lets one at a time proceed.
        """
        conn = self._checkpointer
        assert conn is not None
        raw = conn.raw
        try:
            row = await conn.call(lambda: raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
            logger.debug(
                "sqlite checkpoint",
                extra={"queuert_database": self.database, "queuert_checkpoint": tuple(row or ())},
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning(
                "sqlite background checkpoint failed",
                exc_info=True,
                extra={"queuert_database": self.database},
            )

    def _writer_conn(self) -> ThreadConnection:
        self._check_open()
        return self._writer

    # -- transactions -------------------------------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[SqliteConnection]:
        """A write transaction on the writer connection: commit on normal exit, roll back on error.

        Waits while another task of this process holds the writer. Raises
        :class:`~queuert.errors.UsageError` if the current task already holds one (it would wait for
        itself forever).
        """
        return TransactionBlock(self)

    def savepoint(self, tx: SqliteConnection) -> AbstractAsyncContextManager[SqliteConnection]:
        """``SAVEPOINT`` / ``RELEASE`` / ``ROLLBACK TO`` inside ``tx`` (yields ``tx``)."""
        if _foreign(tx):
            self._check_open()
            return self._sessions.savepoint(tx)
        return SavepointBlock(self, tx)

    def _held_here(self) -> SqliteConnection | None:
        """The open transaction if the current task holds it."""
        owner = self._owner
        if owner is None or owner._task is None:
            return None
        return owner if owner._task is asyncio.current_task() else None

    def _check_not_owner(self) -> None:
        if self._held_here() is not None:
            raise UsageError(
                "this task already holds a transaction of this SQLite database and SQLite has a "
                "single writer, so opening another one (or writing without tx=) would wait for "
                "itself forever: pass the open transaction as tx=..."
            )

    async def _begin(self) -> SqliteConnection:
        self._check_open()
        self._check_not_owner()
        await self._write_lock.acquire()
        if self._closed:
            self._write_lock.release()
            raise StateAdapterClosedError()
        tx = SqliteConnection(self, asyncio.current_task())
        self._owner = tx
        return tx

    async def _end(self, tx: SqliteConnection, *, commit: bool) -> None:
        aborted = commit and tx._aborted is not None
        if aborted:
            commit = False
        try:
            if (tx._begun or (commit and tx._has_writes)) and not self._closed:
                if commit:
                    await self._commit(tx)
                else:
                    try:
                        await self._writer.call(lambda: self._rollback_on_thread(tx))
                    except Exception:  # keep the error that made us roll back
                        logger.exception(
                            "sqlite rollback failed", extra={"queuert_database": self.database}
                        )
            elif commit and self._closed:
                raise StateAdapterClosedError()
        finally:
            tx._active = False
            tx._pending.clear()
            self._owner = None
            self._write_lock.release()
        if aborted:
            raise TransactionAbortedError(
                "a statement failed in this transaction; it has been rolled back"
            )

    async def _commit(self, tx: SqliteConnection) -> None:
        """Send what is pending and COMMIT, in one hop (a busy BEGIN retried, see _hop)."""
        await self._hop(tx, lambda: self._commit_on_thread(tx))
        self._committed()

    async def _hop(self, tx: SqliteConnection, job: Callable[[], T]) -> T:
        """Run ``job`` (which first sends ``tx``'s pending statements) on the writer's thread.

        If the BEGIN it sends finds the database busy, the hop is retried with backoff: nothing of
        the transaction has run yet. Any other failure, or one after the BEGIN, is raised."""
        attempt = 0
        while True:
            try:
                return await self._writer.call(job)
            except Exception as exc:
                if (
                    tx._begun
                    or not tx._pending
                    or tx._pending[0] != BEGIN
                    or not is_busy(exc)
                    or attempt >= self.options.busy_retries
                ):
                    raise
            logger.info(
                "sqlite busy at BEGIN, retrying",
                extra={"queuert_attempt": attempt + 1, "queuert_database": self.database},
            )
            await asyncio.sleep(backoff(attempt))
            attempt += 1
            self._check_tx(tx)

    def _commit_on_thread(self, tx: SqliteConnection) -> None:
        raw = self._writer.raw
        if tx._begun and not raw.in_transaction:
            raise TransactionAbortedError(_ROLLED_BACK)
        try:
            self._flush_pending(tx, raw)
            retry_busy(lambda: raw.execute("COMMIT"), self.options.busy_retries)
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise

    def _begin_on_thread(self, raw: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, waiting up to ``busy_timeout`` for another process's write lock
        (polling for it in WAL mode, see :func:`begin_immediate`)."""
        begin_immediate(raw, poll=self._poll_begin, timeout=self.options.busy_timeout)

    def _rollback_on_thread(self, tx: SqliteConnection) -> None:
        tx._pending.clear()
        raw = self._writer.raw
        if raw.in_transaction:
            raw.execute("ROLLBACK")

    def _flush_pending(self, tx: SqliteConnection, raw: sqlite3.Connection) -> None:
        """Send the queued BEGIN / savepoint statements (on the writer thread)."""
        pending = tx._pending
        while pending:
            stmt = pending[0]
            if stmt == BEGIN:
                if raw.in_transaction:  # left over by a cancelled caller: never join it
                    raw.execute("ROLLBACK")
                self._begin_on_thread(raw)
                tx._begun = True
            elif isinstance(stmt, str):
                raw.execute(stmt)
            else:
                del pending[0]
                try:
                    stmt.fn(raw)
                except BaseException:
                    # Its caller was told it succeeded: what it was part of must not commit now.
                    # If the savepoint it was queued in is still open, rolling that back ends the
                    # aborted state, as after a statement that failed in it; if that savepoint has
                    # ended already (released into its parent), only the transaction's end does.
                    sp = stmt.savepoint
                    tx._aborted = tx._open.index(sp) + 1 if sp in tx._open else 0
                    raise
                continue
            del pending[0]
        if tx._begun and not raw.in_transaction:
            raise TransactionAbortedError(_ROLLED_BACK)

    def _check_tx(self, tx: object) -> SqliteConnection:
        self._check_open()
        if not isinstance(tx, SqliteConnection) or tx._provider is not self:
            raise UsageError(f"{tx!r} is not a transaction of this SQLite database")
        if not tx._active:
            raise UsageError("the transaction has already ended")
        return tx

    @staticmethod
    def can_defer(tx: object) -> bool:
        """True if writes may be deferred in ``tx`` (see :meth:`defer_write`): not once the
        transaction's aiosqlite connection was handed out, whose statements would not see them."""
        return isinstance(tx, SqliteConnection) and not tx._direct

    def defer_write(self, tx: SqliteConnection, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Queue ``fn(connection)`` to run in ``tx`` with its next operation or its COMMIT.

        For writes whose outcome the caller already knows (a chain start with a fresh id): the
        transaction's first write then rides along with the next statement or with the COMMIT
        (``BEGIN IMMEDIATE``, the write and ``COMMIT`` in one hop). If ``fn`` fails, the operation
        that sent it raises that error, and the savepoint ``fn`` was queued in (or the transaction)
        can no longer commit: it must be rolled back, as after a statement that failed in it.
        """
        tx = self._check_tx(tx)
        tx._check_not_aborted()
        tx._pending.append(Deferred(fn, tx._open[-1] if tx._open else None))

    async def poison(self, tx: SqliteConnection, fn: Callable[[sqlite3.Connection], Any]) -> None:
        """Run ``fn`` (a statement that fails) in ``tx`` and put ``tx`` into the aborted state."""
        tx = self._check_tx(tx)
        try:
            await self._run_in_tx(tx, fn, atomic=False)
        finally:
            tx._aborted = tx._depth

    # -- running operations -------------------------------------------------------------------------

    async def run_write(
        self,
        fn: Callable[[sqlite3.Connection], T],
        tx: SqliteConnection | None = None,
        *,
        atomic: bool = True,
        inline: bool = False,
    ) -> T:
        """Run ``fn(connection)`` on the writer thread, in ``tx`` or in a transaction of its own.

        Without ``tx`` the whole transaction (``BEGIN IMMEDIATE``, ``fn``, ``COMMIT``) is one hop and
        is retried on SQLITE_BUSY. With ``tx`` and ``atomic``, ``fn`` runs inside a savepoint so that
        an error leaves nothing of it behind in ``tx``.

        ``inline`` (the caller vouches that ``fn`` is short: a few statements on indexed rows):
        without ``tx``, the transaction runs on the event loop's thread instead when nothing can
        make it wait (see the module docstring); if another process holds the write lock, it goes
        to the thread as above.
        """
        if tx is not None:
            if _foreign(tx):
                self._check_open()
                return await self._sessions.run(fn, tx, write=True, atomic=atomic)
            return await self._run_in_tx(self._check_tx(tx), fn, atomic=atomic)
        self._check_open()
        self._check_not_owner()
        lock = self._write_lock
        if inline and self._inline:
            if self._streak >= _INLINE_STREAK:
                await asyncio.sleep(0)  # give the loop a turn
                self._check_open()
            # No await from this check to the end of the write: nothing else runs on the writer.
            if not lock.locked() and self._writer.idle:
                try:
                    result = self._own_tx(fn, wait=False)
                except Exception as exc:
                    if not is_busy(exc):
                        raise
                    # another process holds the write lock: wait for it on the thread
                else:
                    if self._streak == 0:
                        asyncio.get_running_loop().call_soon(self._loop_turned)
                    self._streak += 1
                    self._committed()
                    return result
        attempt = 0
        while True:
            # acquire/release rather than ``async with``: two coroutines fewer per operation
            await lock.acquire()
            try:
                self._check_open()
                try:
                    result = await self._writer.call(lambda: self._own_tx(fn, wait=True))
                    self._committed()
                    return result
                except Exception as exc:
                    if not is_busy(exc) or attempt >= self.options.busy_retries:
                        raise
            finally:
                lock.release()
            logger.info(
                "sqlite busy, retrying the transaction",
                extra={"queuert_attempt": attempt + 1, "queuert_database": self.database},
            )
            await asyncio.sleep(backoff(attempt))
            attempt += 1

    def _loop_turned(self) -> None:
        self._streak = 0

    def _own_tx(self, fn: Callable[[sqlite3.Connection], T], *, wait: bool) -> T:
        """``BEGIN IMMEDIATE``, ``fn``, ``COMMIT`` on the writer; ``wait`` (on its thread): for
        another process's write lock, else (on the event loop's thread) SQLITE_BUSY at once."""
        raw = self._writer.raw
        if raw.in_transaction:  # left over by a cancelled transaction: never join it
            raw.execute("ROLLBACK")
        if wait:
            self._begin_on_thread(raw)
        else:
            raw.execute(BEGIN)
        try:
            result = fn(raw)
            raw.execute("COMMIT")
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise
        return result

    async def _run_in_tx(
        self, tx: SqliteConnection, fn: Callable[[sqlite3.Connection], T], *, atomic: bool
    ) -> T:
        tx._check_not_aborted()

        def job() -> T:
            raw = self._writer.raw
            self._flush_pending(tx, raw)
            if not atomic:
                return fn(raw)
            return in_savepoint(raw, fn)

        return await self._hop(tx, job)

    async def run_read(
        self, fn: Callable[[sqlite3.Connection], T], tx: SqliteConnection | None = None
    ) -> T:
        """Run ``fn(connection)`` in ``tx``, else on a reader (never inside someone's transaction)."""
        if tx is not None:
            if _foreign(tx):
                self._check_open()
                return await self._sessions.run(fn, tx, write=False, atomic=False)
            return await self._run_in_tx(self._check_tx(tx), fn, atomic=False)
        self._check_open()
        if not self._readers:
            return await self._read_on_writer(fn)
        attempt = 0
        while True:
            reader = await self._idle.get()
            try:
                self._check_open()
                return await reader.call(partial(_releasing_statements, fn, reader.raw))
            except Exception as exc:
                if not is_busy(exc) or attempt >= self.options.busy_retries:
                    raise
            finally:
                self._idle.put_nowait(reader)
            await asyncio.sleep(backoff(attempt))
            attempt += 1

    async def _read_on_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raw = self._writer.raw
        tx = self._held_here()
        if tx is not None:
            # The task holding the transaction reads without tx=: with a single connection it can
            # only read through that connection (its own uncommitted writes are visible, the
            # deferred ones too).
            if tx._has_writes:
                return await self._run_in_tx(tx, fn, atomic=False)
            return await self._writer.call(partial(_releasing_statements, fn, raw))
        async with self._write_lock:
            self._check_open()
            return await self._writer.call(partial(_releasing_statements, fn, raw))


def _foreign(tx: object) -> bool:
    """``tx`` is a SQLAlchemy async session or connection, not a transaction of the provider."""
    return type(tx) is not SqliteConnection and is_session(tx)


def _releasing_statements(fn: Callable[[sqlite3.Connection], T], raw: sqlite3.Connection) -> T:
    """``fn(raw)``, making sure a failure leaves no statement of it unfinished.

    A cursor that ``fn`` was reading when it raised stays alive as long as its frame does, and that
    frame lives on in the exception's traceback: its statement is never reset, so the connection
    keeps its read transaction, and in WAL mode every later read on it sees that old snapshot (a
    chain committed since reads as missing). Clearing the frames' variables releases the cursor at
    once; the exception keeps its type, message and line numbers.
    """
    try:
        return fn(raw)
    except BaseException as exc:
        traceback.clear_frames(exc.__traceback__)
        raise
