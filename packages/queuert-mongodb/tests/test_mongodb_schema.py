"""Migrations (recorded once each, safe when processes migrate at once), the native ObjectId ids and
the refusal of a standalone server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from bson import ObjectId
from mongo_helpers import drop_prefix, open_adapter, unique_prefix
from mongo_server import SecantusServer
from queuert.state import NewJob
from queuert_mongodb import MIGRATIONS, MongoStateAdapter, StandaloneServerError


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    value = unique_prefix()
    yield value
    await drop_prefix(value)


async def test_concurrent_migrations_apply_each_version_once(prefix: str) -> None:
    adapters = [await open_adapter(prefix) for _ in range(4)]
    try:
        results = await asyncio.gather(*(a.migrate() for a in adapters))
        applied = [name for r in results for name in r.applied]
        assert sorted(applied) == sorted(m.name for m in MIGRATIONS), (
            "every migration is applied by exactly one of the processes migrating at once"
        )
        again = await adapters[0].migrate()
        assert again.applied == [] and again.skipped == [m.name for m in MIGRATIONS]
        recorded = await adapters[0].meta.count_documents({"kind": "migration"})
        assert recorded == len(MIGRATIONS)
        indexes = await adapters[0].jobs.index_information()
        assert {"claim", "deduplication", "created", "blockers", "completed"} <= set(indexes)
    finally:
        for a in adapters:
            await a.close()


async def test_unknown_recorded_migrations_are_reported(prefix: str) -> None:
    adapter = await open_adapter(prefix)
    try:
        await adapter.migrate()
        await adapter.meta.insert_one({"_id": "9999_from_a_newer_version", "kind": "migration"})
        assert (await adapter.migrate()).unrecognized == ["9999_from_a_newer_version"]
    finally:
        await adapter.close()


async def test_job_ids_are_native_object_ids_shown_as_hex(prefix: str) -> None:
    adapter = await open_adapter(prefix)
    try:
        await adapter.migrate()
        made = adapter.ids.generate()
        given = str(ObjectId())
        created = await adapter.create_jobs(
            [
                NewJob(id=made, type_name="t", chain_type_name="t", input=1, fresh_id=True),
                NewJob(id=given, type_name="t", chain_type_name="t", input=2),
            ]
        )
        assert [c.job.id for c in created] == [made, given]
        for job_id in (made, given):
            doc = await adapter.jobs.find_one({"_id": ObjectId(job_id)})
            assert doc is not None and isinstance(doc["_id"], ObjectId)
            assert isinstance(doc["chain_id"], ObjectId)
            stored = await adapter.get_job(job_id)
            assert stored is not None and stored.id == job_id == stored.chain_id
        assert not adapter.ids.is_valid(made.upper()), "upper-case hex would not read back equal"
        assert not adapter.ids.is_valid("0" * 23)
    finally:
        await adapter.close()


async def test_a_standalone_server_is_refused_with_the_fix() -> None:
    url = os.environ.get("QUEUERT_MONGODB_STANDALONE_URL")
    server = None
    if not url:
        server = SecantusServer(standalone=True)
        await asyncio.to_thread(server.start)
        url = server.url
    try:
        with pytest.raises(StandaloneServerError, match=r"--replSet.*rs\.initiate"):
            await MongoStateAdapter.connect(url, collection_prefix=unique_prefix())
    finally:
        if server is not None:
            await asyncio.to_thread(server.remove)
