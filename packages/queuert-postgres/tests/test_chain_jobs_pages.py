"""A page of a chain's jobs reads a page of rows, however long the chain: the first job by its key,
the continuations walked in chain order on the chain position index, neither sorted whole."""

from __future__ import annotations

import json
from typing import Any, Literal

import asyncpg
import pytest
from pg_helpers import DSN, CountingProvider
from queuert.ids import uuid7
from queuert_postgres import PgStateAdapter

CONTINUATIONS = 2_000
LIMIT = 10


def scanned_rows(node: dict[str, Any]) -> int:
    """The rows every scan of the plan returned (its leaves' actual rows, over all loops)."""
    children = node.get("Plans", [])
    if not children:
        return int(node["Actual Rows"]) * int(node["Actual Loops"])
    return sum(scanned_rows(child) for child in children)


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_a_page_of_a_long_chain_reads_a_page(
    counted: tuple[PgStateAdapter[Any], CountingProvider], order: Literal["asc", "desc"]
) -> None:
    adapter, provider = counted
    chain = str(uuid7())
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(
            f"INSERT INTO {adapter.sql.names.job} (id, type_name, chain_id, chain_type_name, "
            "chain_index, created_at, scheduled_at) "
            "SELECT CASE WHEN n = 0 THEN $1::uuid ELSE gen_random_uuid() END, 't', $1::uuid, 't', "
            "n, now(), now() FROM generate_series(0, $2::int) n",
            chain,
            CONTINUATIONS,
        )
        await conn.execute(f"ANALYZE {adapter.sql.names.job}")

        expected = list(range(CONTINUATIONS + 1))
        if order == "desc":
            expected.reverse()
        seen: list[int] = []
        cursor: str | None = None
        pages = 0
        while True:
            provider.take()
            page = await adapter.list_chain_jobs(chain, order=order, cursor=cursor, limit=LIMIT)
            (statement,) = provider.statements
            pages += 1
            if pages in (1, 2, 100):  # the first page, the next and one deep in the chain
                # the statement's arguments: the chain, then the position the page starts after
                args: list[Any] = [chain] if cursor is None else [chain, seen[-1]]
                (row,) = await conn.fetch("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, *args)
                plan = json.loads(row[0])[0]["Plan"]
                assert scanned_rows(plan) <= LIMIT + 2, plan
            seen += [job.chain_index for job in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == expected
    finally:
        await conn.close()
