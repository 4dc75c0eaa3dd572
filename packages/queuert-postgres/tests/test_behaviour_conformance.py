"""The shared behaviour suites (client + worker) on PostgreSQL, with the LISTEN/NOTIFY adapter and
with no notifications at all (polling only)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from pg_helpers import DSN, Namespace, drop_namespace, make_adapter, unique_schema
from queuert.in_memory import NoopNotifyAdapter
from queuert.notify import NotifyAdapter
from queuert_conformance import StateHarness
from queuert_conformance.behaviour import *  # noqa: F403
from queuert_postgres import PgNotifyAdapter, PgStateAdapter

CONFIGS = {
    "public": ("public", ""),
    "schema-prefix": ("", "qx_"),
}


@pytest.fixture(params=list(CONFIGS))
async def queuert_state_harness(request: pytest.FixtureRequest) -> AsyncIterator[StateHarness]:
    schema, prefix = CONFIGS[request.param]
    ns = Namespace(schema or unique_schema(), prefix or f"q{uuid.uuid4().hex[:10]}_")
    adapter = await make_adapter("asyncpg", ns)
    try:
        await adapter.migrate()

        async def open_another() -> PgStateAdapter[Any]:
            return await make_adapter("asyncpg", ns)

        async def write_raw(job_id: str, which: str, text: str) -> bool:
            """Store ``text`` as it is, through a connection of its own (as a hand edit would);
            jsonb holds JSON only, so a text that is not JSON cannot be stored."""
            column = {"input": "input", "output": "output"}[which]
            try:
                json.loads(text)
            except ValueError:
                return False
            conn = await asyncpg.connect(DSN)
            try:
                await conn.execute(
                    f'UPDATE "{ns.schema}"."{ns.prefix}job" SET {column} = $1::jsonb'
                    " WHERE id = $2::uuid",
                    text,
                    job_id,
                )
            finally:
                await conn.close()
            return True

        yield StateHarness(
            adapter=adapter, poison=adapter.poison, open_another=open_another, write_raw=write_raw
        )
    finally:
        await adapter.close()
        await drop_namespace(ns)


@pytest.fixture(params=["listen-notify", "no-op"])
async def queuert_notify_factory(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[[], Awaitable[NotifyAdapter]]]:
    prefix = f"qt{uuid.uuid4().hex[:12]}"
    opened: list[NotifyAdapter] = []

    async def factory() -> NotifyAdapter:
        adapter: NotifyAdapter
        if request.param == "no-op":
            adapter = NoopNotifyAdapter()
        else:
            adapter = PgNotifyAdapter(DSN, channel_prefix=prefix, reconnect_initial_delay=0.05)
        opened.append(adapter)
        return adapter

    yield factory
    for adapter in opened:
        await adapter.close()
