"""The shared state adapter suite on the partitioned layout (asyncpg, a schema of its own). The
other providers run the same SQL, so the default layout's runs cover them."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pg_helpers import Namespace, drop_namespace, make_adapter, unique_schema
from queuert_conformance import StateHarness
from queuert_conformance.state import *  # noqa: F403
from queuert_postgres import PgStateAdapter


@pytest.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    ns = Namespace(unique_schema(), "queuert_")
    adapter = await make_adapter("asyncpg", ns, True)
    try:
        await adapter.migrate()

        async def open_another() -> PgStateAdapter[Any]:
            return await make_adapter("asyncpg", ns, True)

        async def open_sharing() -> PgStateAdapter[Any]:
            return PgStateAdapter(
                adapter.provider,
                schema=ns.schema,
                table_prefix=ns.prefix,
                owns_provider=False,
                partitioning=adapter.partitioning,
            )

        yield StateHarness(
            adapter=adapter,
            poison=adapter.poison,
            open_another=open_another,
            open_sharing=open_sharing,
            open_in_process=functools.partial(make_adapter, "asyncpg", ns, True),
        )
    finally:
        await adapter.close()
        await drop_namespace(ns)
