"""SQLite state adapter for queuert (on aiosqlite).

>>> async with from_url("sqlite:///jobs.db") as adapter:   # doctest: +SKIP
...     await adapter.migrate()

See the package README for the concurrency model (one writer, reader pool, WAL, busy retries).
"""

from queuert_sqlite._adapter import SqliteStateAdapter
from queuert_sqlite._driver import SqliteSetupError
from queuert_sqlite._options import SqliteOptions
from queuert_sqlite._provider import SqliteProvider
from queuert_sqlite._schema import MIGRATIONS
from queuert_sqlite._sync import SqlAlchemySyncBackend, SqliteSyncBackend
from queuert_sqlite._transaction import SqliteConnection
from queuert_sqlite._url import from_url, parse_url

__all__ = [
    "MIGRATIONS",
    "SqlAlchemySyncBackend",
    "SqliteConnection",
    "SqliteOptions",
    "SqliteProvider",
    "SqliteSetupError",
    "SqliteStateAdapter",
    "SqliteSyncBackend",
    "from_url",
    "parse_url",
]
