"""``sqlite://:memory:``: one connection, one process; reads wait for other tasks' transactions."""

from __future__ import annotations

import asyncio

from queuert.state import JobFilter
from queuert_sqlite import SqliteStateAdapter, from_url
from sqlite_helpers import LEASE, new_job

SETTLE = 0.2


async def test_memory_database_works() -> None:
    adapter = await from_url("sqlite://:memory:")
    try:
        assert adapter.provider.memory
        assert adapter.provider._readers == []
        assert not adapter.capabilities.multi_process
        assert adapter.capabilities.savepoints and not adapter.capabilities.concurrent_transactions
        await adapter.migrate()
        (created,) = await adapter.create_jobs([new_job("x")])
        claimed = await adapter.claim_jobs(leases=LEASE, limit=5, worker_id="w")
        assert [j.id for j in claimed.jobs] == [created.job.id]
        async with adapter.transaction() as tx:
            await adapter.complete_job(
                created.job.id, outcome="completed", worker_id="w", output={"ok": 1}, tx=tx
            )
        job = await adapter.get_job(created.job.id)
        assert job is not None and job.status == "completed" and job.output == {"ok": 1}
    finally:
        await adapter.close()


async def test_memory_databases_are_private() -> None:
    first = await SqliteStateAdapter.open(":memory:")
    second = await SqliteStateAdapter.open(":memory:")
    try:
        await first.migrate()
        await second.migrate()
        (created,) = await first.create_jobs([new_job()])
        assert await second.get_job(created.job.id) is None
    finally:
        await first.close()
        await second.close()


async def test_reads_of_other_tasks_wait_for_the_transaction() -> None:
    adapter = await SqliteStateAdapter.open(":memory:")
    try:
        await adapter.migrate()
        release = asyncio.Event()
        holding = asyncio.Event()
        ids: list[str] = []

        async def writer() -> None:
            async with adapter.transaction() as tx:
                (created,) = await adapter.create_jobs([new_job()], tx=tx)
                ids.append(created.job.id)
                # the task holding the transaction reads through it (documented limit)
                own = await adapter.get_job(created.job.id)
                assert own is not None
                holding.set()
                await release.wait()

        task = asyncio.create_task(writer())
        await asyncio.wait_for(holding.wait(), 5)
        read = asyncio.create_task(adapter.list_jobs(JobFilter()))
        await asyncio.sleep(SETTLE)
        assert not read.done(), "a read of another task must not see the open transaction"
        release.set()
        await asyncio.wait_for(task, 5)
        page = await asyncio.wait_for(read, 5)
        assert [j.id for j in page.items] == ids
    finally:
        await adapter.close()
