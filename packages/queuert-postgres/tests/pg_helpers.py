"""Shared test helpers. Every test gets its own PostgreSQL namespace (a unique schema, or a unique table prefix
in ``public``), dropped afterwards, so concurrent test runs on the shared server never collide."""

from __future__ import annotations

import functools
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from queuert_conformance import StateHarness
from queuert_postgres import (
    AsyncpgProvider,
    Partitioning,
    PgProvider,
    PgStateAdapter,
    PsycopgProvider,
    Sql,
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


TEST_PARTITIONING = Partitioning(timedelta(days=1), ahead=1, maintain=False)
"""The partitioned layout of the partitioned conformance runs: the current day and the next (no
storage maintenance chains of the workers' own among the jobs the shared suites count; those runs
have tests of their own in ``test_partitioning.py``)."""


async def make_adapter(kind: str, ns: Namespace, partitioned: bool = False) -> PgStateAdapter[Any]:
    provider = await make_provider(kind)
    return PgStateAdapter(
        provider,
        schema=ns.schema,
        table_prefix=ns.prefix,
        partitioning=TEST_PARTITIONING if partitioned else None,
    )


STATE_CONFIGS = {
    # provider, schema ("" = a unique one), table prefix ("" = a unique one)
    "asyncpg-public": ("asyncpg", "public", ""),
    "asyncpg-schema-prefix": ("asyncpg", "", "qx_"),
    "psycopg": ("psycopg", "", "queuert_"),
    "sqlalchemy-asyncpg": ("sqlalchemy", "", "queuert_"),
    "sqlalchemy-psycopg": ("sqlalchemy-psycopg", "", "queuert_"),
}


@asynccontextmanager
async def backlog(
    ns: Namespace, columns: dict[str, str]
) -> AsyncIterator[tuple[PgStateAdapter[Any], asyncpg.Connection]]:
    """A migrated asyncpg adapter whose job table holds 20,000 generated chain starts of types
    ``t0`` .. ``t4``, analysed, and a raw connection to ``EXPLAIN`` its statements on. ``columns``
    adds columns to each row: their SQL expressions of ``n``, the row's number, and ``u``, its id."""
    adapter = await make_adapter("asyncpg", ns)
    try:
        await adapter.migrate()
        job = adapter.sql.names.job
        conn = await asyncpg.connect(DSN)
        try:
            await conn.execute(
                f"INSERT INTO {job} (id, type_name, chain_id, chain_type_name, chain_index, "
                f"created_at, {', '.join(columns)}) "
                f"SELECT u, 't' || (n % 5), u, 't' || (n % 5), 0, now(), {', '.join(columns.values())} "
                "FROM (SELECT gen_random_uuid() AS u, n FROM generate_series(1, 20000) n) g"
            )
            await conn.execute(f"ANALYZE {job}")
            yield adapter, conn
        finally:
            await conn.close()
    finally:
        await adapter.close()


async def explain(conn: asyncpg.Connection, statement: Sql, *args: Any) -> str:
    """The plan PostgreSQL chooses for one of the adapter's statements, as text."""
    return "\n".join(row[0] for row in await conn.fetch("EXPLAIN " + statement.text, *args))


@asynccontextmanager
async def new_database() -> AsyncIterator[str]:
    """The DSN of a database of its own (for what PostgreSQL counts or scopes per database), dropped
    afterwards."""
    name = f"qt_db_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield DSN.rsplit("/", 1)[0] + "/" + name
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def terminate_backend(pid: int) -> None:
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


class CountingProvider:
    """Delegates to ``inner`` and records every statement sent (one entry per round trip)."""

    def __init__(self, inner: PgProvider[Any]) -> None:
        self.inner = inner
        self.statements: list[str] = []
        self.transactions = 0
        """Transactions opened with :meth:`transaction` (BEGIN ... COMMIT)."""

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        self.transactions += 1
        return self.inner.transaction()

    async def fetch(self, sql: Sql, args: Sequence[Any], tx: Any | None) -> list[Any]:
        self.statements.append(sql.text)
        return await self.inner.fetch(sql, args, tx)

    async def script(self, sql: str, tx: Any) -> None:
        self.statements.append(sql)
        await self.inner.script(sql, tx)

    async def close(self) -> None:
        await self.inner.close()

    def take(self) -> int:
        """The statements sent since the last call (the transaction count starts again too)."""
        count = len(self.statements)
        self.statements.clear()
        self.transactions = 0
        return count


@asynccontextmanager
async def behaviour_harness(
    ns: Namespace, *, partitioned: bool = False
) -> AsyncIterator[StateHarness]:
    """A migrated asyncpg adapter in ``ns`` with the behaviour suites' hooks (poison, another
    adapter, raw writes); ``ns`` is dropped afterwards. ``partitioned``: the partitioned layout."""
    adapter = await make_adapter("asyncpg", ns, partitioned)
    try:
        await adapter.migrate()

        async def open_another() -> PgStateAdapter[Any]:
            return await make_adapter("asyncpg", ns, partitioned)

        async def write_raw(job_id: str, which: str, text: str) -> bool:
            """Store ``text`` as it is, through a connection of its own (as a hand edit would);
            jsonb holds JSON only, so a text that is not JSON cannot be stored."""
            column = which
            if which in ("input", "output"):
                kind = "jsonb"
                try:
                    json.loads(text)
                except ValueError:
                    return False
            else:  # a typed time column: only what timestamptz reads (its range is wider)
                kind = "timestamptz"
            conn = await asyncpg.connect(DSN)
            try:
                await conn.execute(
                    f'UPDATE "{ns.schema}"."{ns.prefix}job" SET {column} = $1::text::{kind}'
                    " WHERE id = $2::uuid",
                    text,
                    job_id,
                )
            except asyncpg.DataError:
                return False
            finally:
                await conn.close()
            return True

        yield StateHarness(
            adapter=adapter,
            poison=adapter.poison,
            open_another=open_another,
            write_raw=write_raw,
            # in the suites' worker processes: an adapter of their own in the same namespace
            open_in_process=functools.partial(make_adapter, "asyncpg", ns, partitioned),
        )
    finally:
        await adapter.close()
        await drop_namespace(ns)
