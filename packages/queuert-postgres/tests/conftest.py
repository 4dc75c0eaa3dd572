"""Fixtures: every test gets its own PostgreSQL namespace (a unique schema, or a unique table prefix
in ``public``), dropped afterwards, so concurrent test runs on the shared server never collide."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from queuert_conformance import StateHarness
from queuert_postgres import (
    AsyncpgProvider,
    PgProvider,
    PgStateAdapter,
    PsycopgProvider,
    SqlAlchemyProvider,
)

DSN = os.environ.get("QUEUERT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Namespace:
    schema: str
    prefix: str


async def drop_namespace(ns: Namespace) -> None:
    conn = await asyncpg.connect(DSN)
    try:
        if ns.schema == "public":
            for table in ("job_blocker", "job", "migration"):
                await conn.execute(f'DROP TABLE IF EXISTS public."{ns.prefix}{table}" CASCADE')
        else:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{ns.schema}" CASCADE')
    finally:
        await conn.close()


def unique_schema() -> str:
    return f"qt_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def namespace() -> AsyncIterator[Namespace]:
    """A unique schema with the default table prefix."""
    ns = Namespace(unique_schema(), "queuert_")
    yield ns
    await drop_namespace(ns)


ProviderFactory = Callable[[], Awaitable[PgProvider[Any]]]


async def make_provider(kind: str) -> PgProvider[Any]:
    if kind == "asyncpg":
        return await AsyncpgProvider.connect(DSN, min_size=1, max_size=10)
    if kind == "psycopg":
        return PsycopgProvider(DSN, max_size=10)
    if kind in ("sqlalchemy", "sqlalchemy-psycopg"):
        from sqlalchemy.ext.asyncio import create_async_engine

        driver = "asyncpg" if kind == "sqlalchemy" else "psycopg"
        engine = create_async_engine(DSN.replace("postgresql://", f"postgresql+{driver}://"))
        return _OwnedEngine(engine)
    raise AssertionError(kind)


class _OwnedEngine(SqlAlchemyProvider):
    """A SQLAlchemy provider that disposes its engine on close (tests only)."""

    async def close(self) -> None:
        await self.engine.dispose()


async def make_adapter(kind: str, ns: Namespace) -> PgStateAdapter[Any]:
    provider = await make_provider(kind)
    return PgStateAdapter(provider, schema=ns.schema, table_prefix=ns.prefix)


STATE_CONFIGS = {
    # provider, schema ("" = a unique one), table prefix ("" = a unique one)
    "asyncpg-public": ("asyncpg", "public", ""),
    "asyncpg-schema-prefix": ("asyncpg", "", "qx_"),
    "psycopg": ("psycopg", "", "queuert_"),
    "sqlalchemy-asyncpg": ("sqlalchemy", "", "queuert_"),
    "sqlalchemy-psycopg": ("sqlalchemy-psycopg", "", "queuert_"),
}


@pytest.fixture(params=list(STATE_CONFIGS))
async def queuert_state_harness(request: pytest.FixtureRequest) -> AsyncIterator[StateHarness]:
    kind, schema, prefix = STATE_CONFIGS[request.param]
    ns = Namespace(schema or unique_schema(), prefix or f"q{uuid.uuid4().hex[:10]}_")
    adapter = await make_adapter(kind, ns)
    try:
        await adapter.migrate()

        async def open_another() -> PgStateAdapter[Any]:
            return await make_adapter(kind, ns)

        yield StateHarness(adapter=adapter, poison=adapter.poison, open_another=open_another)
    finally:
        await adapter.close()
        await drop_namespace(ns)
