"""MongoDB backend for queuert: a state adapter on PyMongo's asyncio API (``AsyncMongoClient``)
and a notify adapter on change streams."""

from queuert_mongodb._docs import OBJECT_IDS
from queuert_mongodb._schema import MIGRATIONS
from queuert_mongodb._url import from_url
from queuert_mongodb.errors import StandaloneServerError, TransactionRetriesExhaustedError
from queuert_mongodb.notify import MongoNotifyAdapter
from queuert_mongodb.state import MongoStateAdapter

__all__ = [
    "MIGRATIONS",
    "OBJECT_IDS",
    "MongoNotifyAdapter",
    "MongoStateAdapter",
    "StandaloneServerError",
    "TransactionRetriesExhaustedError",
    "from_url",
]
