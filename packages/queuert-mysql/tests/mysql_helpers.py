"""Shared test helpers. Every test gets its own table prefix, dropped afterwards, so concurrent test
runs on the shared server never collide."""

from __future__ import annotations

import os
import uuid
from typing import Any

import aiomysql
from queuert_mysql import MysqlStateAdapter
from queuert_mysql._url import parse_url

URL = os.environ.get("QUEUERT_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")

TABLES = ("job_blocker", "job", "dedup_lock", "migration")


def connect_args() -> dict[str, Any]:
    return parse_url(URL)[0]


def unique_prefix() -> str:
    return f"q{uuid.uuid4().hex[:10]}_"


async def drop_prefix(prefix: str) -> None:
    conn = await aiomysql.connect(**connect_args(), autocommit=True)
    try:
        async with conn.cursor() as cur:
            for table in TABLES:
                await cur.execute(f"DROP TABLE IF EXISTS `{prefix}{table}`")
    finally:
        conn.close()


async def make_adapter(prefix: str, **options: Any) -> MysqlStateAdapter[Any]:
    return await MysqlStateAdapter.connect(
        table_prefix=prefix, maxsize=options.pop("maxsize", 10), **connect_args(), **options
    )


async def sql(statement: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own (autocommit) and return its rows."""
    conn = await aiomysql.connect(**connect_args(), autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute(statement, args)
            return list(await cur.fetchall()) if cur.description else []
    finally:
        conn.close()
