"""The shared behaviour suites (client + worker) on MySQL / MariaDB, in two table configurations,
with an in-process notify adapter and with no notifications at all (polling only: MySQL has no
LISTEN/NOTIFY of its own)."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from mysql_helpers import drop_prefix, make_adapter, sql, unique_prefix
from queuert.in_memory import InProcessNotifyAdapter, NoopNotifyAdapter
from queuert.notify import NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_mysql import MysqlStateAdapter

CONFIGS = ["default-prefix", "unique-prefix"]


@pytest.fixture(params=CONFIGS)
async def queuert_state_harness(request: pytest.FixtureRequest) -> AsyncIterator[StateHarness]:
    prefix = unique_prefix()
    if request.param == "default-prefix":
        prefix = prefix[:-1] + "queuert_"
    adapter = await make_adapter(prefix)
    try:
        await adapter.migrate()

        async def open_another() -> MysqlStateAdapter[Any]:
            return await make_adapter(prefix)

        async def write_raw(job_id: str, which: str, text: str) -> bool:
            """Store ``text`` as it is, through a connection of its own (as a hand edit would);
            the columns hold JSON text only (``JSON_VALID``), so a text that is not JSON cannot be
            stored."""
            column = {"input": "input", "output": "output"}[which]
            try:
                json.loads(text)
            except ValueError:
                return False
            await sql(f"UPDATE `{prefix}job` SET {column} = %s WHERE id = %s", text, job_id)
            return True

        yield StateHarness(
            adapter=adapter,
            poison=adapter.poison,
            open_another=open_another,
            write_raw=write_raw,
            # in the suites' worker processes: an adapter of their own on the same tables
            open_in_process=functools.partial(make_adapter, prefix),
        )
    finally:
        await adapter.close()
        await drop_prefix(prefix)


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
