"""The shared behaviour suites (client + worker) on MongoDB, with an in-process notify adapter and with
no notifications at all (polling only)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import mongo_server
import pytest
from bson import DatetimeMS, ObjectId
from mongo_helpers import drop_prefix, open_adapter, unique_prefix
from pymongo.errors import OperationFailure
from queuert.in_memory import InProcessNotifyAdapter, NoopNotifyAdapter
from queuert.notify import NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_mongodb import MongoStateAdapter

_BEFORE_YEAR_ONE_MS = -62_135_596_800_000 - 44 * 365 * 86_400_000
"""A BSON date in 44 BC (milliseconds since 1970): MongoDB holds it, Python's datetime cannot."""


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
            field = which
            value: Any = text
            if which not in ("input", "output"):
                # A date field can hold another type, but no query compares it as a time: such
                # a job is never due (test_mongodb_unreadable_times.py covers how it is read).
                # What the cases can use is a BSON date Python cannot read: before the year 1.
                if not text.endswith(" BC"):
                    return False
                value = DatetimeMS(_BEFORE_YEAR_ONE_MS)
            try:
                await adapter.jobs.update_one({"_id": ObjectId(job_id)}, {"$set": {field: value}})
            except OperationFailure:  # a server that cannot hold such a date either
                return False
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
