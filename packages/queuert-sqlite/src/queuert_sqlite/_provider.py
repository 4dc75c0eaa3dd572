"""Connections to one SQLite database: one writer, a small pool of readers, transactions and retries.

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
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType, TracebackType
from typing import Any, TypeVar

import aiosqlite
from queuert.errors import QueuertError, StateAdapterClosedError, UsageError

__all__ = [
    "SqliteConnection",
    "SqliteOptions",
    "SqliteProvider",
    "SqliteSetupError",
    "TransactionAbortedError",
]

T = TypeVar("T")

logger = logging.getLogger("queuert_sqlite")

_BEGIN = "BEGIN IMMEDIATE"
DRIVER_ENV = "QUEUERT_SQLITE_DRIVER"
MIN_SQLITE = (3, 35, 0)
"""RETURNING (3.35) and json_each are required."""
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


class SqliteSetupError(QueuertError):
    """The database cannot be used as configured (e.g. foreign keys cannot be enabled)."""


class TransactionAbortedError(QueuertError):
    """The transaction (or savepoint) cannot continue.

    Either SQLite rolled the transaction back on its own after an error (disk full, I/O error, ...),
    or a statement was made to fail with :meth:`SqliteStateAdapter.poison`, which emulates
    PostgreSQL's aborted-transaction state for tests: every operation raises until the savepoint
    that was open at the failure is rolled back, and the transaction cannot commit.
    """

    def __init__(
        self,
        message: str = "SQLite rolled this transaction back after an error; it cannot continue",
    ) -> None:
        super().__init__(message)


def _is_dbapi_error(exc: BaseException, name: str) -> bool:
    """True if ``exc`` is a DB-API ``name`` error of any SQLite driver (stdlib, sqlean, ...)."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def is_integrity_error(exc: BaseException) -> bool:
    return _is_dbapi_error(exc, "IntegrityError")


def is_busy(exc: BaseException) -> bool:
    """True for SQLITE_BUSY / SQLITE_LOCKED (another connection holds a conflicting lock)."""
    if not _is_dbapi_error(exc, "OperationalError"):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


@dataclass(frozen=True)
class SqliteOptions:
    """How connections are opened and how contention is handled.

    * ``readers``: reader connections for reads without a transaction (0 = read on the writer, waiting
      for open transactions; forced to 0 for an in-memory database).
    * ``busy_timeout``: seconds SQLite itself waits for a lock held by another connection.
    * ``busy_retries``: extra attempts (with exponential backoff and jitter) after ``busy_timeout``
      ran out, for transactions the provider runs on its own and for the ``BEGIN`` of yours.
    * ``journal_mode``: ``"WAL"`` (default; required for readers that never wait for the writer).
    * ``synchronous``: ``"NORMAL"`` (default; durable across application crashes, the last
      transactions may be lost on power failure) or ``"FULL"`` (fsync at every commit).
    * ``cached_statements``: size of each connection's prepared statement cache.
    * ``checkpoint_interval``: in WAL mode, WAL checkpoints run on a background connection of
      their own, at most every this many seconds after a commit, so that the writer never pays for
      copying pages back and for the fsync (``None``: SQLite's automatic checkpoints in the
      committing writer).
    * ``driver``: the DB-API module that provides SQLite: ``"sqlite3"`` (the standard library,
      default), ``"sqlean"`` (sqlean.py) or ``"pysqlite3"`` (pysqlite3 / pysqlite3-binary), for a
      newer SQLite than the one bundled with Python. The environment variable
      ``QUEUERT_SQLITE_DRIVER`` sets the default.
    """

    readers: int = 2
    busy_timeout: float = 5.0
    busy_retries: int = 3
    journal_mode: str = "WAL"
    synchronous: str = "NORMAL"
    cached_statements: int = 256
    checkpoint_interval: float | None = 0.25
    driver: str = field(default_factory=lambda: os.environ.get(DRIVER_ENV, "sqlite3"))

    def __post_init__(self) -> None:
        if isinstance(self.readers, bool) or not isinstance(self.readers, int) or self.readers < 0:
            raise UsageError(f"readers must be an int >= 0, not {self.readers!r}")
        if not isinstance(self.busy_timeout, (int, float)) or self.busy_timeout < 0:
            raise UsageError(
                f"busy_timeout must be a number of seconds >= 0, not {self.busy_timeout!r}"
            )
        if (
            isinstance(self.busy_retries, bool)
            or not isinstance(self.busy_retries, int)
            or self.busy_retries < 0
        ):
            raise UsageError(f"busy_retries must be an int >= 0, not {self.busy_retries!r}")
        if self.journal_mode.upper() not in ("WAL", "DELETE", "TRUNCATE", "PERSIST", "MEMORY"):
            raise UsageError(f"unsupported journal_mode {self.journal_mode!r}")
        if self.synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise UsageError(f"unsupported synchronous {self.synchronous!r}")
        if self.checkpoint_interval is not None and (
            not isinstance(self.checkpoint_interval, (int, float)) or self.checkpoint_interval < 0
        ):
            raise UsageError(
                f"checkpoint_interval must be seconds >= 0 or None, not {self.checkpoint_interval!r}"
            )
        if isinstance(self.cached_statements, bool) or not isinstance(self.cached_statements, int):
            raise UsageError(f"cached_statements must be an int, not {self.cached_statements!r}")


def in_savepoint(raw: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` inside a savepoint: nothing of it remains if it raises (on the connection's
    thread, inside a transaction)."""
    raw.execute("SAVEPOINT queuert_op")
    try:
        result = fn(raw)
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK TO queuert_op")
            raw.execute("RELEASE queuert_op")
        raise
    raw.execute("RELEASE queuert_op")
    return result


def load_driver(name: str) -> ModuleType:
    """The DB-API module of a SQLite driver, checked for the SQLite features the adapter needs."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise SqliteSetupError(
            f"SQLite driver {name!r} is not installed (pip install sqlean.py or pysqlite3-binary, "
            "or use the standard library's 'sqlite3')"
        ) from exc
    if not hasattr(module, "connect") and hasattr(module, "dbapi2"):
        module = module.dbapi2
    if not hasattr(module, "connect") or not hasattr(module, "sqlite_version_info"):
        raise SqliteSetupError(f"{name!r} is not a SQLite DB-API module")
    version = tuple(module.sqlite_version_info)
    if version < MIN_SQLITE:
        raise SqliteSetupError(
            f"SQLite {module.sqlite_version} from {name!r} is too old: queuert needs "
            f"{'.'.join(map(str, MIN_SQLITE))} or newer (RETURNING); try driver='sqlean'"
        )
    return module


def _backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): 20 ms doubling up to 1 s, with jitter."""
    return float(min(0.02 * (2**attempt), 1.0) * random.uniform(0.5, 1.0))


_Submit = Callable[[Callable[[], Any]], Awaitable[Any]]


class _Conn:
    """One SQLite connection and the aiosqlite thread it lives on."""

    __slots__ = ("_submit", "aio", "raw", "role")

    def __init__(self, aio: aiosqlite.Connection, raw: sqlite3.Connection, role: str) -> None:
        self.aio = aio
        self.raw = raw
        self.role = role
        # aiosqlite runs every call of a connection on that connection's thread, in order. Its
        # internal ``_execute`` is the one primitive that runs an arbitrary function there, which is
        # what lets an operation of many statements cost one thread hop instead of one per statement.
        submit: _Submit | None = getattr(aio, "_execute", None)
        if submit is None:  # pragma: no cover - guarded by the aiosqlite version range
            raise SqliteSetupError(
                "this aiosqlite version has no Connection._execute; install aiosqlite >=0.20,<1"
            )
        self._submit = submit

    def call(self, fn: Callable[[], T]) -> Awaitable[T]:
        """Run ``fn`` on the connection's thread (after everything queued before it)."""
        return self._submit(fn)

    @classmethod
    async def open(
        cls,
        database: str,
        *,
        uri: bool,
        options: SqliteOptions,
        role: str,
        setup: Callable[[sqlite3.Connection], None],
        dbapi: ModuleType,
    ) -> _Conn:
        holder: list[sqlite3.Connection] = []

        def connector() -> sqlite3.Connection:
            raw: sqlite3.Connection = dbapi.connect(
                database,
                timeout=options.busy_timeout,
                isolation_level=None,
                uri=uri,
                cached_statements=options.cached_statements,
            )
            try:
                setup(raw)
            except BaseException:
                raw.close()
                raise
            holder.append(raw)
            return raw

        aio = aiosqlite.Connection(connector, 64)
        # A forgotten close() must not hang interpreter exit on aiosqlite's (non-daemon) thread;
        # being killed at exit is safe for SQLite (an open transaction rolls back on next open).
        thread = getattr(aio, "_thread", None)
        if thread is not None:
            thread.daemon = True
        await aio
        return cls(aio, holder[0], role)

    async def close(self) -> None:
        await self.aio.close()


def _run_with_busy_retries(action: Callable[[], T], options: SqliteOptions, what: str) -> T:
    """Run ``action`` on a connection thread, retrying on SQLITE_BUSY (used while connecting)."""
    attempt = 0
    while True:
        try:
            return action()
        except Exception as exc:
            if not is_busy(exc) or attempt >= options.busy_retries:
                raise
            logger.warning(
                "sqlite busy during %s, retrying",
                what,
                extra={"queuert_operation": what, "queuert_attempt": attempt + 1},
            )
            time.sleep(_backoff(attempt))
            attempt += 1


def _common_setup(raw: sqlite3.Connection, options: SqliteOptions) -> None:
    raw.execute(f"PRAGMA busy_timeout = {int(options.busy_timeout * 1000)}")
    raw.execute("PRAGMA foreign_keys = ON")
    row = raw.execute("PRAGMA foreign_keys").fetchone()
    if row is None or row[0] != 1:
        raise SqliteSetupError(
            "PRAGMA foreign_keys = ON has no effect on this SQLite build (compiled without foreign "
            "key support?); queuert needs enforced foreign keys"
        )
    raw.execute(f"PRAGMA synchronous = {options.synchronous.upper()}")
    raw.execute("PRAGMA temp_store = MEMORY")


@dataclass(frozen=True)
class _Deferred:
    """A write queued by :meth:`SqliteProvider.defer_write` inside ``savepoint`` (a name; ``None``
    for the transaction itself)."""

    fn: Callable[[sqlite3.Connection], object]
    savepoint: str | None


class SqliteConnection:
    """The transaction object of the SQLite adapter: the writer connection inside your transaction.

    Pass it as ``tx=`` to queuert calls, and run your own SQL in the same transaction with
    :meth:`execute`, :meth:`executemany` or :meth:`run`. It is valid only inside the
    ``async with ....transaction()`` block that produced it.
    """

    __slots__ = (
        "_aborted",
        "_active",
        "_begun",
        "_depth",
        "_direct",
        "_open",
        "_pending",
        "_provider",
        "_savepoints",
        "_task",
    )

    def __init__(self, provider: SqliteProvider, task: asyncio.Task[Any] | None) -> None:
        self._provider = provider
        self._task = task
        self._active = True
        self._begun = False
        """Set on the writer thread once ``BEGIN IMMEDIATE`` has run."""
        self._pending: list[str | _Deferred] = [_BEGIN]
        """What to send before the next operation: statements (BEGIN, SAVEPOINT, RELEASE, ROLLBACK TO)
        and deferred writes (see :meth:`SqliteProvider.defer_write`)."""
        self._direct = False
        """The aiosqlite connection was handed out: statements may reach SQLite without us, so
        nothing may be deferred any more (they would not see it)."""
        self._savepoints = 0
        self._depth = 0
        """Open savepoints (0 = the transaction itself)."""
        self._open: list[str] = []
        """Names of the open savepoints, outermost first."""
        self._aborted: int | None = None
        """Depth at which a poisoned statement failed (emulated aborted state), else None."""

    @property
    def _has_writes(self) -> bool:
        """Deferred writes are queued (they make the transaction worth committing)."""
        return any(type(item) is _Deferred for item in self._pending)

    @property
    def is_active(self) -> bool:
        return self._active

    @property
    def provider(self) -> SqliteProvider:
        return self._provider

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        """Execute one statement in this transaction and return all its rows (tuples)."""
        return await self._provider.run_write(
            lambda raw: raw.execute(sql, parameters).fetchall(), self, atomic=False
        )

    async def executemany(self, sql: str, seq_of_parameters: Sequence[Sequence[Any]]) -> int:
        """Execute one statement once per parameter set; returns the number of changed rows."""

        def op(raw: sqlite3.Connection) -> int:
            return raw.executemany(sql, seq_of_parameters).rowcount

        return await self._provider.run_write(op, self, atomic=False)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the writer's thread, inside this transaction, in one hop.

        ``fn`` gets the plain :class:`sqlite3.Connection`; it must not commit or roll back.
        """
        return await self._provider.run_write(fn, self, atomic=False)

    async def aiosqlite_connection(self) -> aiosqlite.Connection:
        """The underlying :class:`aiosqlite.Connection`, after the transaction has begun.

        Statements you send through it run in this transaction; do not commit or roll back on it.
        """
        self._direct = True
        await self._provider.run_write(lambda raw: None, self, atomic=False)
        return self._provider._writer_conn().aio

    def __repr__(self) -> str:
        state = "active" if self._active else "ended"
        return f"<SqliteConnection {state} begun={self._begun}>"


class _Transaction:
    """``async with provider.transaction() as tx``."""

    __slots__ = ("_provider", "_tx")

    def __init__(self, provider: SqliteProvider) -> None:
        self._provider = provider
        self._tx: SqliteConnection | None = None

    async def __aenter__(self) -> SqliteConnection:
        self._tx = await self._provider._begin()
        return self._tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tx = self._tx
        assert tx is not None
        await self._provider._end(tx, commit=exc_type is None)


class _Savepoint:
    __slots__ = ("_depth", "_name", "_provider", "_tx")

    def __init__(self, provider: SqliteProvider, tx: SqliteConnection) -> None:
        self._provider = provider
        self._tx = tx
        self._name = ""
        self._depth = 0

    async def __aenter__(self) -> SqliteConnection:
        tx = self._provider._check_tx(self._tx)
        self._provider._check_not_aborted(tx)
        tx._savepoints += 1
        tx._depth += 1
        self._depth = tx._depth
        self._name = f"queuert_sp_{tx._savepoints}"
        tx._open.append(self._name)
        tx._pending.append(f"SAVEPOINT {self._name}")
        return tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tx = self._tx
        if not tx._active:
            return
        tx._depth = self._depth - 1
        del tx._open[self._depth - 1 :]
        aborted = tx._aborted is not None and tx._aborted >= self._depth
        if aborted:
            tx._aborted = None  # rolling this savepoint back ends the aborted state
        rollback = exc_type is not None or aborted
        opened = f"SAVEPOINT {self._name}"
        pending = tx._pending
        if pending and pending[-1] == opened:
            pending.pop()  # nothing ran inside: the savepoint never reached SQLite
        elif rollback and opened in pending:
            # Only deferred writes ran inside and none reached SQLite: forget them.
            del pending[pending.index(opened) :]
        else:
            if rollback:
                tx._pending.append(f"ROLLBACK TO {self._name}")
            tx._pending.append(f"RELEASE {self._name}")
        if aborted and exc_type is None:
            raise TransactionAbortedError(
                "a statement failed in this savepoint; it has been rolled back"
            )


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
        writer: _Conn,
        readers: list[_Conn],
        checkpointer: _Conn | None = None,
    ) -> None:
        self.database = database
        self.options = options
        self.memory = memory
        self.uri = uri
        self._writer = writer
        self._readers = readers
        self._idle: asyncio.Queue[_Conn] = asyncio.Queue()
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

        def writer_setup(raw: sqlite3.Connection) -> None:
            _common_setup(raw, options)

            def set_journal() -> None:
                row = raw.execute(f"PRAGMA journal_mode = {journal}").fetchone()
                modes.append(str(row[0]).upper() if row else "")

            _run_with_busy_retries(set_journal, options, "set journal mode")
            if modes and modes[0] == "WAL":
                # In WAL mode only BEGIN IMMEDIATE ever waits on the writer; the provider polls
                # for it itself (see _begin_on_thread), so SQLite's own handler is switched off.
                raw.execute("PRAGMA busy_timeout = 0")
                if options.checkpoint_interval is not None:
                    raw.execute("PRAGMA wal_autocheckpoint = 0")  # see _checkpoint

        writer = await _Conn.open(
            database, uri=uri, options=options, role="writer", setup=writer_setup, dbapi=dbapi
        )
        readers: list[_Conn] = []
        checkpointer: _Conn | None = None
        try:
            if not memory and modes and modes[0] != journal:
                logger.warning(
                    "sqlite journal_mode %s requested but the database uses %s",
                    journal,
                    modes[0],
                    extra={"queuert_database": database, "queuert_journal_mode": modes[0]},
                )

            def reader_setup(raw: sqlite3.Connection) -> None:
                _common_setup(raw, options)
                raw.execute("PRAGMA query_only = ON")

            for _ in range(reader_count):
                readers.append(
                    await _Conn.open(
                        database,
                        uri=uri,
                        options=options,
                        role="reader",
                        setup=reader_setup,
                        dbapi=dbapi,
                    )
                )
            if modes and modes[0] == "WAL" and options.checkpoint_interval is not None:
                checkpointer = await _Conn.open(
                    database,
                    uri=uri,
                    options=options,
                    role="checkpointer",
                    setup=lambda raw: _common_setup(raw, options),
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
        return provider

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

    def _writer_conn(self) -> _Conn:
        self._check_open()
        return self._writer

    # -- transactions -------------------------------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[SqliteConnection]:
        """A write transaction on the writer connection: commit on normal exit, roll back on error.

        Waits while another task of this process holds the writer. Raises
        :class:`~queuert.errors.UsageError` if the current task already holds one (it would wait for
        itself forever).
        """
        return _Transaction(self)

    def savepoint(self, tx: SqliteConnection) -> AbstractAsyncContextManager[SqliteConnection]:
        """``SAVEPOINT`` / ``RELEASE`` / ``ROLLBACK TO`` inside ``tx`` (yields ``tx``)."""
        return _Savepoint(self, tx)

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
                    or tx._pending[0] != _BEGIN
                    or not is_busy(exc)
                    or attempt >= self.options.busy_retries
                ):
                    raise
            logger.info(
                "sqlite busy at BEGIN, retrying",
                extra={"queuert_attempt": attempt + 1, "queuert_database": self.database},
            )
            await asyncio.sleep(_backoff(attempt))
            attempt += 1
            self._check_tx(tx)

    def _commit_on_thread(self, tx: SqliteConnection) -> None:
        raw = self._writer.raw
        if tx._begun and not raw.in_transaction:
            raise TransactionAbortedError()
        try:
            self._flush_pending(tx, raw)
            attempt = 0
            while True:
                try:
                    raw.execute("COMMIT")
                    return
                except Exception as exc:
                    if not is_busy(exc) or attempt >= self.options.busy_retries:
                        raise
                    time.sleep(_backoff(attempt))
                    attempt += 1
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise

    def _begin_on_thread(self, raw: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, waiting up to ``busy_timeout`` for another process's write lock.

        SQLite's own busy handler sleeps in growing steps up to 100 ms, so a process waiting in it
        can starve while other processes take and release the lock between its naps. In WAL mode
        the provider polls instead, every 0.1 to 2 ms with jitter (a failed attempt is one
        non-blocking file-lock call), which shares the lock fairly between processes.
        """
        if not self._poll_begin:
            raw.execute(_BEGIN)
            return
        deadline: float | None = None
        delay = 0.0001
        while True:
            try:
                raw.execute(_BEGIN)
                return
            except Exception as exc:
                if not is_busy(exc):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.options.busy_timeout
                elif now >= deadline:
                    raise
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 0.002)

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
            if stmt == _BEGIN:
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
            raise TransactionAbortedError()

    def _check_tx(self, tx: object) -> SqliteConnection:
        self._check_open()
        if not isinstance(tx, SqliteConnection) or tx._provider is not self:
            raise UsageError(f"{tx!r} is not a transaction of this SQLite database")
        if not tx._active:
            raise UsageError("the transaction has already ended")
        return tx

    @staticmethod
    def _check_not_aborted(tx: SqliteConnection) -> None:
        if tx._aborted is not None:
            raise TransactionAbortedError(
                "a statement failed in this transaction: roll back to the enclosing savepoint "
                "(or end the transaction) before running more statements"
            )

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
        self._check_not_aborted(tx)
        tx._pending.append(_Deferred(fn, tx._open[-1] if tx._open else None))

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
    ) -> T:
        """Run ``fn(connection)`` on the writer thread, in ``tx`` or in a transaction of its own.

        Without ``tx`` the whole transaction (``BEGIN IMMEDIATE``, ``fn``, ``COMMIT``) is one hop and
        is retried on SQLITE_BUSY. With ``tx`` and ``atomic``, ``fn`` runs inside a savepoint so that
        an error leaves nothing of it behind in ``tx``.
        """
        if tx is not None:
            return await self._run_in_tx(self._check_tx(tx), fn, atomic=atomic)
        self._check_open()
        self._check_not_owner()
        attempt = 0
        while True:
            async with self._write_lock:
                self._check_open()
                try:
                    result = await self._writer.call(lambda: self._own_tx_on_thread(fn))
                    self._committed()
                    return result
                except Exception as exc:
                    if not is_busy(exc) or attempt >= self.options.busy_retries:
                        raise
            logger.info(
                "sqlite busy, retrying the transaction",
                extra={"queuert_attempt": attempt + 1, "queuert_database": self.database},
            )
            await asyncio.sleep(_backoff(attempt))
            attempt += 1

    def _own_tx_on_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raw = self._writer.raw
        if raw.in_transaction:  # left over by a cancelled transaction: never join it
            raw.execute("ROLLBACK")
        self._begin_on_thread(raw)
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
        self._check_not_aborted(tx)

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
            return await self._run_in_tx(self._check_tx(tx), fn, atomic=False)
        self._check_open()
        if not self._readers:
            return await self._read_on_writer(fn)
        attempt = 0
        while True:
            reader = await self._idle.get()
            try:
                self._check_open()
                return await reader.call(partial(fn, reader.raw))
            except Exception as exc:
                if not is_busy(exc) or attempt >= self.options.busy_retries:
                    raise
            finally:
                self._idle.put_nowait(reader)
            await asyncio.sleep(_backoff(attempt))
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
            return await self._writer.call(lambda: fn(raw))
        async with self._write_lock:
            self._check_open()
            return await self._writer.call(lambda: fn(raw))
