"""``SqliteOptions``: how the provider opens connections and handles contention."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from queuert.errors import UsageError

from queuert_sqlite._driver import DRIVER_ENV

__all__ = ["SqliteOptions"]


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
    * ``inline_writes``: short writes of the provider's own (a chain start, a single completion)
      run on the event loop's thread when they cannot wait: WAL with background checkpoints and
      ``synchronous`` ``OFF`` or ``NORMAL`` (or an in-memory database), the writer idle, and no
      other process holding the write lock (else they take the writer's thread as before). The
      event loop is held for the statements' CPU time (tens of microseconds per start), never for
      a lock or an fsync. ``False``: every write runs on the writer's thread.
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
    inline_writes: bool = True
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
        if not isinstance(self.inline_writes, bool):
            raise UsageError(f"inline_writes must be a bool, not {self.inline_writes!r}")
        if isinstance(self.cached_statements, bool) or not isinstance(self.cached_statements, int):
            raise UsageError(f"cached_statements must be an int, not {self.cached_statements!r}")
