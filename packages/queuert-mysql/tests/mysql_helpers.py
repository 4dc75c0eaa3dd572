"""Shared test helpers. Every test gets its own table prefix, dropped afterwards, so concurrent test
runs on the shared server never collide."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiomysql
import pymysql
from queuert_conformance import StateHarness
from queuert_mysql import MysqlStateAdapter, SqlAlchemyProvider
from queuert_mysql._url import parse_url

URL = os.environ.get("QUEUERT_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")

TABLES = ("job_blocker", "job_limit", "job", "dedup_lock", "migration")


def connect_args(url: str | None = None) -> dict[str, Any]:
    return parse_url(url or URL)[0]


def unique_prefix() -> str:
    return f"q{uuid.uuid4().hex[:10]}_"


async def drop_prefix(prefix: str, *, url: str | None = None) -> None:
    conn = await aiomysql.connect(**connect_args(url), autocommit=True)
    try:
        async with conn.cursor() as cur:
            warnings.simplefilter("ignore")  # the server's note for a table that is not there
            for table in TABLES:
                await cur.execute(f"DROP TABLE IF EXISTS `{prefix}{table}`")
    finally:
        conn.close()


async def make_adapter(
    prefix: str, kind: str = "aiomysql", *, url: str | None = None, **options: Any
) -> MysqlStateAdapter[Any]:
    """An adapter on the aiomysql pool of its own (``kind="aiomysql"``) or on a SQLAlchemy engine
    with the ``aiomysql`` or ``asyncmy`` driver (``"sqlalchemy-aiomysql"``, ...), disposed on close."""
    if kind == "aiomysql":
        return await MysqlStateAdapter.connect(
            table_prefix=prefix, maxsize=options.pop("maxsize", 10), **connect_args(url), **options
        )
    return MysqlStateAdapter(OwnedEngine(engine(kind.split("-")[1])), table_prefix=prefix)


def engine(driver: str) -> Any:
    from sqlalchemy.ext.asyncio import create_async_engine

    return create_async_engine(
        URL.replace("mysql://", f"mysql+{driver}://"), isolation_level="READ COMMITTED"
    )


class OwnedEngine(SqlAlchemyProvider):
    """A SQLAlchemy provider that disposes its engine on close (tests only)."""

    async def close(self) -> None:
        await self.engine.dispose()


async def sql(statement: str, *args: Any, url: str | None = None) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own (autocommit; on the server of ``url``, by
    default the tests' one) and return its rows."""
    conn = await aiomysql.connect(**connect_args(url), autocommit=True)
    try:
        async with conn.cursor() as cur:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # notes such as "Unknown table" of IF EXISTS
                await cur.execute(statement, args)
            return list(await cur.fetchall()) if cur.description else []
    finally:
        conn.close()


class CountingProvider:
    """Delegates to ``inner`` and records every statement sent (one entry per round trip),
    including the ``BEGIN`` and ``COMMIT`` of the transactions it opens."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.statements: list[str] = []

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        self.statements.append("BEGIN")
        async with self.inner.transaction() as tx:
            yield tx
            self.statements.append("COMMIT")

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        return self._transaction()

    def state(self, tx: Any) -> Any:
        return self.inner.state(tx)

    async def fetch(self, sql: str, args: Sequence[Any], tx: Any | None) -> list[Any]:
        self.statements.append(sql)
        return list(await self.inner.fetch(sql, args, tx))

    async def execute(self, sql: str, args: Sequence[Any], tx: Any | None) -> int:
        self.statements.append(sql)
        return int(await self.inner.execute(sql, args, tx))

    def multi_statements(self, tx: Any | None) -> bool:
        return bool(self.inner.multi_statements(tx))

    async def fetch_many(self, sql: str, args: Sequence[Any], tx: Any | None) -> list[Any]:
        self.statements.append(sql)
        return list(await self.inner.fetch_many(sql, args, tx))

    async def close(self) -> None:
        await self.inner.close()

    def take(self) -> int:
        count = len(self.statements)
        self.statements.clear()
        return count


_THREAD_ID = re.compile(r"(?:MySQL|MariaDB) thread id (\d+)")


async def server_transactions() -> dict[int, str]:
    """The server's open InnoDB transactions by connection thread id: ``"LOCK WAIT"`` for one
    waiting for a lock, else ``"ACTIVE"``.

    Read from ``SHOW ENGINE INNODB STATUS``, not ``information_schema.innodb_trx``: InnoDB fills
    that table from a cache that it refreshes only when nobody has read it for 0.1 s, so a loop
    polling it faster sees one frozen picture for as long as it polls.
    """
    rows = await sql("SHOW ENGINE INNODB STATUS")
    status = str(rows[0][2])
    listing = status.partition("LIST OF TRANSACTIONS FOR EACH SESSION:")[2]
    listing = listing.partition("\n--------\n")[0]
    found: dict[int, str] = {}
    for block in listing.split("---TRANSACTION ")[1:]:
        header = block.partition("\n")[0]
        thread = _THREAD_ID.search(block)
        if ", ACTIVE" not in header or thread is None:
            continue  # "not started": a session with no transaction open
        waiting = "\nLOCK WAIT" in block or "WAITING FOR THIS LOCK" in block
        found[int(thread.group(1))] = "LOCK WAIT" if waiting else "ACTIVE"
    return found


async def waiting_for_a_lock(thread_ids: Callable[[], Iterable[int]]) -> None:
    """Return once the server shows one of the connections ``thread_ids()`` (called on every
    look, so connections opened meanwhile count) waiting for a row lock."""
    while True:
        waiting = {t for t, state in (await server_transactions()).items() if state == "LOCK WAIT"}
        if waiting & set(thread_ids()):
            return
        await asyncio.sleep(0.01)


@asynccontextmanager
async def behaviour_harness(prefix: str) -> AsyncIterator[StateHarness]:
    """The behaviour suites' harness: a migrated adapter under ``prefix`` with every hook the
    suites use; the tables are dropped afterwards."""
    adapter = await make_adapter(prefix)
    try:
        await adapter.migrate()

        async def open_another() -> MysqlStateAdapter[Any]:
            return await make_adapter(prefix)

        async def write_raw(job_id: str, which: str, text: str) -> bool:
            """Store ``text`` as it is, through a connection of its own (as a hand edit would);
            the columns hold JSON text only (``JSON_VALID``), so a text that is not JSON cannot be
            stored."""
            column = which
            if which in ("input", "output"):
                try:
                    json.loads(text)
                except ValueError:
                    return False
            try:  # a DATETIME(6) column refuses what is not a date, but takes a zero date
                await sql(f"UPDATE `{prefix}job` SET {column} = %s WHERE id = %s", text, job_id)
            except pymysql.err.MySQLError:
                return False
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
