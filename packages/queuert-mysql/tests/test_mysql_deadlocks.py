"""Deadlocks (1213) on the real server: retried whole when the operation runs in a transaction of
the adapter's own, surfaced in the caller's transaction (which the server has rolled back), after
which every operation in it raises ``TransactionAbortedError`` and it cannot commit. Either way no
transaction stays open on the server afterwards and no lock is left behind.

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
from mysql_helpers import (
    connect_args,
    drop_prefix,
    make_adapter,
    server_transactions,
    sql,
    unique_prefix,
    waiting_for_a_lock,
)
from queuert.errors import TransactionAbortedError
from queuert.ids import uuid7
from queuert.state import Completion, NewJob
from queuert_mysql import MysqlStateAdapter
from queuert_mysql._errors import DEADLOCK, error_code


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


def pool_threads(adapter: MysqlStateAdapter[Any]) -> set[int]:
    pool = adapter.provider.pool  # type: ignore[attr-defined]
    return {c.server_thread_id[0] for c in [*pool._free, *pool._used]}


async def assert_nothing_left_open(adapter: MysqlStateAdapter[Any], *job_ids: str) -> None:
    """No connection of the adapter's pool has a transaction open, neither as the driver sees it
    nor on the server, and every row can be locked at once by a new transaction."""
    pool = adapter.provider.pool  # type: ignore[attr-defined]
    assert not pool._used, "every connection went back to the pool"
    assert [c.get_transaction_status() for c in pool._free] == [False] * len(pool._free)
    open_ = await server_transactions()
    assert not (pool_threads(adapter) & set(open_)), f"transactions left open: {open_}"
    conn = await aiomysql.connect(**connect_args(), autocommit=False)
    try:
        async with conn.cursor() as cur:
            await cur.execute("BEGIN")
            await cur.execute(
                f"SELECT id FROM `{adapter.names.prefix}job` WHERE id IN "
                f"({', '.join(['%s'] * len(job_ids))}) FOR UPDATE NOWAIT",
                job_ids,
            )
            assert len(await cur.fetchall()) == len(job_ids)
        await conn.rollback()
    finally:
        conn.close()


async def retried_deadlock(adapter: MysqlStateAdapter[Any]) -> tuple[list[Any], str, str]:
    """Two jobs completed in one call of the adapter, which becomes a deadlock's victim midway and
    runs its transaction again: the results and the two job ids."""
    first, second = await two_jobs(adapter)
    other = await heavy_locker(adapter.names.prefix, second)
    try:
        # locks `first`, then waits for `second`
        closing = asyncio.create_task(
            adapter.complete_jobs([Completion(first), Completion(second)], worker_id=None)
        )
        await waiting_for_a_lock(lambda: pool_threads(adapter))
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
    return list(results), first, second


def deadlock_retries(caplog: pytest.LogCaptureFixture) -> int:
    return sum(getattr(r, "queuert_error_code", None) == DEADLOCK for r in caplog.records)


async def test_a_deadlock_is_retried_in_the_adapters_own_transaction(
    adapter: MysqlStateAdapter[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="queuert.mysql")
    results, _, _ = await retried_deadlock(adapter)
    assert [r is not None and r.job.outcome == "completed" for r in results] == [True, True]
    assert deadlock_retries(caplog), "the adapter met the deadlock and ran its transaction again"


async def test_no_transaction_is_left_open_after_a_retried_deadlock(
    adapter: MysqlStateAdapter[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="queuert.mysql")
    _, first, second = await retried_deadlock(adapter)
    assert deadlock_retries(caplog)
    await assert_nothing_left_open(adapter, first, second)


async def test_a_deadlock_in_the_callers_transaction_is_surfaced(
    adapter: MysqlStateAdapter[Any],
) -> None:
    first, second = await two_jobs(adapter)
    other = await heavy_locker(adapter.names.prefix, second)
    try:
        with pytest.raises(TransactionAbortedError):
            async with adapter.transaction() as tx:
                await adapter.get_job(first, lock=True, tx=tx)
                waiting = asyncio.create_task(adapter.get_job(second, lock=True, tx=tx))
                await waiting_for_a_lock(lambda: [tx.server_thread_id[0]])
                async with other.cursor() as cur:
                    await cur.execute(
                        f"SELECT id FROM `{adapter.names.prefix}job` WHERE id = %s FOR UPDATE",
                        (first,),
                    )
                with pytest.raises(Exception) as caught:
                    await waiting
                assert error_code(caught.value) == DEADLOCK
                with pytest.raises(TransactionAbortedError):
                    await adapter.get_job(first, tx=tx)
                # leaving the block normally: it must not commit, and says so
        await other.commit()
    finally:
        other.close()
    assert (await adapter.get_job(first)) is not None
    await assert_nothing_left_open(adapter, first, second)
