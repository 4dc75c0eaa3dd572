"""Shared test helpers. Every test gets its own collection prefix, dropped afterwards, so concurrent
test runs on one server never collide."""

from __future__ import annotations

import uuid
from typing import Any

from mongo_server import server_url
from pymongo import AsyncMongoClient
from queuert_mongodb import MongoStateAdapter

DATABASE = "queuert_test"


def unique_prefix() -> str:
    return f"q{uuid.uuid4().hex[:10]}_"


async def open_adapter(prefix: str, url: str | None = None, **options: Any) -> MongoStateAdapter:
    """An adapter on a client of its own (closed with the adapter)."""
    return await MongoStateAdapter.connect(
        url or server_url(), database=DATABASE, collection_prefix=prefix, **options
    )


async def drop_prefix(prefix: str, url: str | None = None) -> None:
    client: AsyncMongoClient[Any] = AsyncMongoClient(url or server_url())
    try:
        db = client[DATABASE]
        for name in await db.list_collection_names():
            if name.startswith(prefix):
                # bounded: a transaction left open by a failed test must not hang the run
                await db.command("drop", name, maxTimeMS=20_000)
    finally:
        await client.close()
