"""MySQL and MariaDB backend for queuert: a state adapter on aiomysql or SQLAlchemy."""

from queuert_mysql._provider import AiomysqlProvider, MysqlProvider, TxState
from queuert_mysql._schema import MIGRATIONS
from queuert_mysql._sqlalchemy import SqlAlchemyProvider
from queuert_mysql._sync import PymysqlSyncBackend, SqlAlchemySyncBackend
from queuert_mysql._url import from_url
from queuert_mysql.state import MysqlStateAdapter

__all__ = [
    "MIGRATIONS",
    "AiomysqlProvider",
    "MysqlProvider",
    "MysqlStateAdapter",
    "PymysqlSyncBackend",
    "SqlAlchemyProvider",
    "SqlAlchemySyncBackend",
    "TxState",
    "from_url",
]
