"""Fixtures: every test gets its own table prefix on the shared server, dropped afterwards."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import mysql_container
import pytest

mysql_container.start_if_asked()  # before mysql_helpers reads QUEUERT_MYSQL_URL

from mysql_helpers import drop_prefix, make_adapter, unique_prefix  # noqa: E402
from queuert_conformance import StateHarness  # noqa: E402
from queuert_mysql import MysqlStateAdapter  # noqa: E402

STATE_CONFIGS = {
    # provider, table prefix ("queuert_": the default one, made unique per test)
    "aiomysql-default-prefix": ("aiomysql", "queuert_"),
    "aiomysql-other-prefix": ("aiomysql", ""),
    "sqlalchemy-aiomysql": ("sqlalchemy-aiomysql", ""),
    "sqlalchemy-asyncmy": ("sqlalchemy-asyncmy", ""),
}


@pytest.fixture(params=list(STATE_CONFIGS))
async def queuert_state_harness(request: pytest.FixtureRequest) -> AsyncIterator[StateHarness]:
    kind, prefix = STATE_CONFIGS[request.param]
    # A prefix of its own per test, so parallel runs never collide; the default one's suffix is
    # kept (the tables of "queuert_" with a unique lead).
    prefix = unique_prefix()[:-1] + prefix if prefix else unique_prefix()
    adapter = await make_adapter(prefix, kind)
    try:
        await adapter.migrate()

        async def open_another() -> MysqlStateAdapter[Any]:
            return await make_adapter(prefix, kind)

        async def open_sharing() -> MysqlStateAdapter[Any]:
            return MysqlStateAdapter(adapter.provider, table_prefix=prefix, owns_provider=False)

        yield StateHarness(
            adapter=adapter,
            poison=adapter.poison,
            open_another=open_another,
            open_sharing=open_sharing,
            # in the suite's worker processes: the same provider kind and table prefix
            open_in_process=functools.partial(make_adapter, prefix, kind),
        )
    finally:
        await adapter.close()
        await drop_prefix(prefix)


def pytest_unconfigure(config: pytest.Config) -> None:
    mysql_container.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The hypothesis model case runs for the aiomysql configurations only in the default run: it
    drives the same SQL whatever the provider, and takes half a minute per run. The SQLAlchemy
    providers get every other case. ``QUEUERT_MYSQL_FULL=1`` runs it for all."""
    import os

    if os.environ.get("QUEUERT_MYSQL_FULL") == "1":
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        config_name = callspec.params.get("queuert_state_harness") if callspec else None
        cls = getattr(item, "cls", None)
        is_model = cls is not None and cls.__name__ == "TestStateModel"
        if is_model and config_name is not None and str(config_name).startswith("sqlalchemy"):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
