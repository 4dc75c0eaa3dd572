"""The shared behaviour suites (client + worker) on MongoDB, with an in-process notify adapter and with
no notifications at all (polling only)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable

import mongo_server
import pytest
from bson import ObjectId
from mongo_helpers import drop_prefix, open_adapter, unique_prefix
from queuert.in_memory import InProcessNotifyAdapter, NoopNotifyAdapter
from queuert.notify import NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.applicability import not_applicable
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_mongodb import MongoStateAdapter


@pytest.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    prefix = unique_prefix()
    url = mongo_server.server_url()
    adapter = await open_adapter(prefix, url)
    try:
        await adapter.migrate()

        async def open_another() -> MongoStateAdapter:
            return await open_adapter(prefix, url)

        async def write_raw(job_id: str, which: str, text: str) -> bool:
            """Store ``text`` as it is, outside the adapter (as a hand edit would): the documents
            keep inputs and outputs as text, so any text can be stored."""
            if which not in ("input", "output"):
                # a date field can hold another type, but no query compares it as a time: such a
                # job is never due (test_mongodb_unreadable_times.py covers how it is read)
                not_applicable("raw_time_never_due")
            field = which
            await adapter.jobs.update_one({"_id": ObjectId(job_id)}, {"$set": {field: text}})
            return True

        yield StateHarness(
            adapter=adapter,
            poison=adapter.poison,
            open_another=open_another,
            open_in_process=functools.partial(open_adapter, prefix, url),
            write_raw=write_raw,
        )
    finally:
        await adapter.close()
        await drop_prefix(prefix, url)


@pytest.fixture(params=["in-process", "polling-only"])
async def queuert_notify_factory(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[[], Awaitable[NotifyAdapter]]]:
    shared = InProcessNotifyAdapter()
    opened: list[NotifyAdapter] = [shared]

    async def factory() -> NotifyAdapter:
        if request.param == "in-process":
            return shared
        adapter = NoopNotifyAdapter()
        opened.append(adapter)
        return adapter

    yield factory
    for adapter in opened:
        await adapter.close()
