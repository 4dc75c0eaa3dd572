"""Shared test helpers. Every test gets its own collection prefix, dropped afterwards, so concurrent
test runs on one server never collide."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from mongo_server import owned, server_url
from pymongo import AsyncMongoClient
from pymongo.errors import ExecutionTimeout
from queuert_mongodb import MongoStateAdapter

DATABASE = "queuert_test"

DROP_DEADLINE = 90.0
"""Seconds ``drop_prefix`` keeps trying one drop on a server it does not own: longer than the
transaction lifetime limit (60 s), after which the server aborts a transaction left open by a
process a test killed, so that a drop waiting for its locks goes through."""


def unique_prefix() -> str:
    return f"q{uuid.uuid4().hex[:10]}_"


async def open_adapter(prefix: str, url: str | None = None, **options: Any) -> MongoStateAdapter:
    """An adapter on a client of its own (closed with the adapter)."""
    return await MongoStateAdapter.connect(
        url or server_url(), database=DATABASE, collection_prefix=prefix, **options
    )


async def drop_prefix(prefix: str, url: str | None = None) -> None:
    """Drop the collections of ``prefix``.

    A worker process a test SIGKILLed inside a transaction leaves that transaction open on the
    server. SecantusDB aborts such a transaction only when a later transaction command finds it
    expired, and a drop (or any write outside a transaction) that meets its writes meanwhile spins
    without end and stalls the whole server (the package README lists this difference). On the
    SecantusDB this process started, which no other process's tests use, ``killAllSessions`` first
    ends every transaction left open. A real server aborts it after the transaction lifetime limit;
    a drop waiting for it is tried again until then.
    """
    url = url or server_url()
    # bounded: a server that stops answering fails the teardown instead of hanging the run
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        url, socketTimeoutMS=int(DROP_DEADLINE * 1000) + 30_000
    )
    try:
        await _end_abandoned_transactions(client, url)
        db = client[DATABASE]
        for name in await db.list_collection_names():
            if name.startswith(prefix):
                await _patiently(lambda name=name: db.command("drop", name, maxTimeMS=20_000))
    finally:
        await client.close()


async def drop_database(name: str, url: str | None = None) -> None:
    """Drop the database ``name`` (a test's own), as :func:`drop_prefix` drops collections."""
    url = url or server_url()
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        url, socketTimeoutMS=int(DROP_DEADLINE * 1000) + 30_000
    )
    try:
        await _end_abandoned_transactions(client, url)
        await _patiently(lambda: client[name].command("dropDatabase", maxTimeMS=20_000))
    finally:
        await client.close()


async def _end_abandoned_transactions(client: AsyncMongoClient[Any], url: str) -> None:
    if owned(url):
        await client.admin.command("killAllSessions", [])


async def _patiently(command: Callable[[], Awaitable[Any]]) -> None:
    deadline = time.monotonic() + DROP_DEADLINE
    while True:
        try:
            await command()
            return
        except ExecutionTimeout:
            if time.monotonic() > deadline:
                raise
