"""Fixtures: every test gets its own PostgreSQL namespace (a unique schema, or a unique table prefix
in ``public``), dropped afterwards, so concurrent test runs on the shared server never collide."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pg_helpers import (
    DSN,
    STATE_CONFIGS,
    CountingProvider,
    Namespace,
    drop_namespace,
    make_adapter,
    terminate_backend,
    unique_schema,
)
from queuert_conformance import StateHarness
from queuert_postgres import AsyncpgProvider, PgStateAdapter


@pytest.fixture
async def namespace() -> AsyncIterator[Namespace]:
    """A unique schema with the default table prefix."""
    ns = Namespace(unique_schema(), "queuert_")
    yield ns
    await drop_namespace(ns)


@pytest.fixture
async def counted(
    namespace: Namespace,
) -> AsyncIterator[tuple[PgStateAdapter[Any], CountingProvider]]:
    """A migrated adapter in ``namespace`` whose provider counts the statements it sends (from
    zero: the migration's are not counted)."""
    provider = CountingProvider(await AsyncpgProvider.connect(DSN))
    adapter = PgStateAdapter(provider, schema=namespace.schema, table_prefix=namespace.prefix)
    await adapter.migrate()
    provider.take()
    yield adapter, provider
    await adapter.close()


@pytest.fixture(params=list(STATE_CONFIGS))
async def queuert_state_harness(request: pytest.FixtureRequest) -> AsyncIterator[StateHarness]:
    kind, schema, prefix = STATE_CONFIGS[request.param]
    ns = Namespace(schema or unique_schema(), prefix or f"q{uuid.uuid4().hex[:10]}_")
    adapter = await make_adapter(kind, ns)
    try:
        await adapter.migrate()

        async def open_another() -> PgStateAdapter[Any]:
            return await make_adapter(kind, ns)

        async def open_sharing() -> PgStateAdapter[Any]:
            return PgStateAdapter(
                adapter.provider, schema=ns.schema, table_prefix=ns.prefix, owns_provider=False
            )

        yield StateHarness(
            adapter=adapter,
            poison=adapter.poison,
            open_another=open_another,
            open_sharing=open_sharing,
            # in the suite's worker processes: the same provider kind and namespace
            open_in_process=functools.partial(make_adapter, kind, ns),
        )
    finally:
        await adapter.close()
        await drop_namespace(ns)


@pytest.fixture
async def queuert_notify_harness() -> AsyncIterator[Any]:
    import asyncio

    from queuert_conformance import NotifyHarness
    from queuert_postgres import PgNotifyAdapter

    prefix = f"qt{uuid.uuid4().hex[:12]}"
    adapter = PgNotifyAdapter(DSN, channel_prefix=prefix, reconnect_initial_delay=0.05)

    async def open_another() -> PgNotifyAdapter:
        return PgNotifyAdapter(DSN, channel_prefix=prefix, reconnect_initial_delay=0.05)

    async def interrupt() -> None:
        pid = adapter.listener_pid
        assert pid is not None, "the adapter has no listening connection to interrupt"
        lost = adapter._lost  # set by the connection's termination listener
        await terminate_backend(pid)
        await asyncio.wait_for(lost.wait(), 10)

    try:
        yield NotifyHarness(
            adapter=adapter,
            open_another=open_another,
            interrupt=interrupt,
            wake_hint_budgets=False,
        )
    finally:
        await adapter.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The hypothesis model case runs for the asyncpg configurations only in the default run: it
    drives the same SQL whatever the provider, and takes half a minute per run. The other
    providers get every other case. ``QUEUERT_PG_FULL=1`` (tools/matrix, GitHub) runs it for all."""
    import os

    if os.environ.get("QUEUERT_PG_FULL") == "1":
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        config_name = callspec.params.get("queuert_state_harness") if callspec else None
        cls = getattr(item, "cls", None)
        is_model = cls is not None and cls.__name__ == "TestStateModel"
        if is_model and config_name is not None and not str(config_name).startswith("asyncpg"):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
