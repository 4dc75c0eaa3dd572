"""PostgreSQL backends for queuert: a state adapter and a LISTEN/NOTIFY notify adapter."""

from queuert_postgres._partitions import Bounds, Partitioning
from queuert_postgres._provider import (
    AsyncpgProvider,
    PgProvider,
    PsycopgProvider,
    Sql,
    SqlAlchemyProvider,
)
from queuert_postgres._schema import MIGRATIONS
from queuert_postgres._sync import PsycopgSyncBackend, SqlAlchemySyncBackend
from queuert_postgres._url import from_url
from queuert_postgres.notify import PgNotifyAdapter
from queuert_postgres.state import PgStateAdapter

__all__ = [
    "MIGRATIONS",
    "AsyncpgProvider",
    "Bounds",
    "Partitioning",
    "PgNotifyAdapter",
    "PgProvider",
    "PgStateAdapter",
    "PsycopgProvider",
    "PsycopgSyncBackend",
    "Sql",
    "SqlAlchemyProvider",
    "SqlAlchemySyncBackend",
    "from_url",
]
