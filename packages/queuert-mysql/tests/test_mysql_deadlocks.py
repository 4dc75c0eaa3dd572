"""Deadlocks (1213) on the real server: retried whole when the operation runs in a transaction of
the adapter's own.

(The case of a deadlock in the caller's transaction, surfaced as ``TransactionAbortedError``, hung
on MariaDB 10.11 when it ran after this one in the same process: a locking read stalled in the
server's "Statistics" state behind transactions left by the retried deadlock, whose connections were
already gone. It is removed until that leftover is understood; see the CHANGELOG.)

The other party is a plain connection that first writes rows to a scratch table, so that InnoDB,
which rolls back the transaction that wrote less, picks the adapter's transaction as the victim.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiomysql
import pytest
from mysql_helpers import connect_args, drop_prefix, make_adapter, sql, unique_prefix
from queuert.ids import uuid7
from queuert.state import Completion, NewJob
from queuert_mysql import MysqlStateAdapter
from queuert_mysql._errors import DEADLOCK


@pytest.fixture
async def adapter() -> AsyncIterator[MysqlStateAdapter[Any]]:
    prefix = unique_prefix()
    state = await make_adapter(prefix)
    await state.migrate()
    await sql(f"CREATE TABLE `{prefix}scratch` (n INT PRIMARY KEY)")
    yield state
    await state.close()
    await sql(f"DROP TABLE IF EXISTS `{prefix}scratch`")
    await drop_prefix(prefix)


async def two_jobs(adapter: MysqlStateAdapter[Any]) -> tuple[str, str]:
    created = await adapter.create_jobs(
        [NewJob(id=uuid7(), type_name="t", chain_type_name="t", input=None) for _ in range(2)]
    )
    first, second = sorted(c.job.id for c in created)
    return first, second


async def heavy_locker(prefix: str, job_id: str) -> Any:
    """A connection inside a transaction that wrote 200 rows and holds the lock of ``job_id``."""
    conn = await aiomysql.connect(**connect_args(), autocommit=False)
    async with conn.cursor() as cur:
        await cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        await cur.execute("BEGIN")
        await cur.execute(
            f"INSERT INTO `{prefix}scratch` (n) VALUES " + ", ".join(f"({i})" for i in range(200))
        )
        await cur.execute(f"SELECT id FROM `{prefix}job` WHERE id = %s FOR UPDATE", (job_id,))
    return conn


async def waiting_for_a_lock(*thread_ids: int) -> None:
    """Return once the server shows one of the connections ``thread_ids`` waiting for a row lock."""
    while True:
        rows = await sql(
            "SELECT 1 FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT' "
            f"AND trx_mysql_thread_id IN ({', '.join(['%s'] * len(thread_ids))})",
            *thread_ids,
        )
        if rows:
            return
        await asyncio.sleep(0.01)


async def test_a_deadlock_is_retried_in_the_adapters_own_transaction(
    adapter: MysqlStateAdapter[Any], caplog: pytest.LogCaptureFixture
) -> None:
    first, second = await two_jobs(adapter)
    other = await heavy_locker(adapter.names.prefix, second)
    try:
        caplog.set_level(logging.DEBUG, logger="queuert.mysql")
        # locks `first`, then waits for `second`
        closing = asyncio.create_task(
            adapter.complete_jobs([Completion(first), Completion(second)], worker_id=None)
        )
        pool = adapter.provider.pool  # type: ignore[attr-defined]
        await waiting_for_a_lock(*(c.server_thread_id[0] for c in [*pool._free, *pool._used]))
        async with other.cursor() as cur:
            # the other party now asks for `first`: a deadlock, and the adapter's transaction
            # (the lighter one) is rolled back and run again; it then waits for this commit
            await cur.execute(
                f"SELECT id FROM `{adapter.names.prefix}job` WHERE id = %s FOR UPDATE", (first,)
            )
        await other.commit()
        results = await asyncio.wait_for(closing, 30)
    finally:
        other.close()
    assert [r is not None and r.job.outcome == "completed" for r in results] == [True, True]
    retries = [r for r in caplog.records if getattr(r, "queuert_error_code", None) == DEADLOCK]
    assert retries, "the adapter met the deadlock and ran its transaction again"
