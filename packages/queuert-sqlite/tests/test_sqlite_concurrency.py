"""Single writer, reader pool, busy handling, read isolation, cancellation and several processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import pytest
from queuert.errors import StateAdapterClosedError, UsageError
from queuert.state import JobFilter
from queuert_sqlite import SqliteStateAdapter
from sqlite_helpers import (
    DBAPI,
    LEASE,
    TYPE,
    external_write_lock,
    new_job,
    run_processes,
    statements_of,
)


class ObservedLock(asyncio.Lock):
    """The provider's write lock, telling when a task starts waiting for it (``contended``)."""

    def __init__(self) -> None:
        super().__init__()
        self.contended = asyncio.Event()

    async def acquire(self) -> Literal[True]:
        if self.locked():
            self.contended.set()
        return await super().acquire()


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Re-check ``condition`` (every millisecond) until it holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.001)


@asynccontextmanager
async def open_adapter(path: Path, **options: object) -> AsyncIterator[SqliteStateAdapter]:
    adapter = await SqliteStateAdapter.open(path, **options)  # type: ignore[arg-type]
    try:
        await adapter.migrate()
        yield adapter
    finally:
        await adapter.close()


# -- read isolation -----------------------------------------------------------------------------


async def test_reads_without_tx_see_only_committed_work(adapter: SqliteStateAdapter) -> None:
    (done,) = await adapter.create_jobs([new_job("committed")])
    async with adapter.transaction() as tx:
        (pending,) = await adapter.create_jobs([new_job("uncommitted")], tx=tx)
        claimed = await adapter.claim_jobs(leases=LEASE, limit=10, worker_id="w", tx=tx)
        assert {j.id for j in claimed.jobs} == {done.job.id, pending.job.id}
        # the same task reads without tx while its transaction is open: never waits, never
        # sees the uncommitted insert or the uncommitted lease
        assert await asyncio.wait_for(adapter.get_job(pending.job.id), 5) is None
        seen = await asyncio.wait_for(adapter.get_job(done.job.id), 5)
        assert seen is not None and seen.status == "ready"
        listed = await adapter.list_jobs(JobFilter())
        assert [j.id for j in listed.items] == [done.job.id]
        assert await adapter.next_due([TYPE]) is not None
    after = await adapter.get_job(pending.job.id)
    assert after is not None and after.status == "running"


async def test_readers_do_not_wait_for_another_process_writing(
    adapter: SqliteStateAdapter, db_path: Path
) -> None:
    (created,) = await adapter.create_jobs([new_job()])
    with external_write_lock(db_path) as other:
        other.execute(
            f"UPDATE {adapter.table_prefix}job SET leased_by = 'x', leased_until = '9999' "
            "WHERE id = ?",
            (created.job.id,),
        )
        job = await asyncio.wait_for(adapter.get_job(created.job.id), 5)
        assert job is not None and job.leased_by is None


async def test_concurrent_reads_use_several_readers(adapter: SqliteStateAdapter) -> None:
    await adapter.create_jobs([new_job(i) for i in range(50)])
    pages = await asyncio.gather(*(adapter.list_jobs(JobFilter(), limit=100) for _ in range(20)))
    assert all(len(p.items) == 50 for p in pages)
    assert adapter.provider._idle.qsize() == len(adapter.provider._readers)


# -- the single writer -------------------------------------------------------------------------------


async def test_a_second_transaction_in_the_same_task_is_refused(
    adapter: SqliteStateAdapter,
) -> None:
    async with adapter.transaction() as tx:
        with pytest.raises(UsageError, match="already holds a transaction"):
            async with adapter.transaction():
                pass
        with pytest.raises(UsageError, match="already holds a transaction"):
            await adapter.create_jobs([new_job()])
        with pytest.raises(UsageError, match="already holds a transaction"):
            await adapter.migrate()
        await adapter.create_jobs([new_job()], tx=tx)  # the open transaction still works
    assert len((await adapter.list_jobs(JobFilter())).items) == 1


async def test_other_tasks_wait_for_the_writer(adapter: SqliteStateAdapter) -> None:
    lock = ObservedLock()
    adapter.provider._write_lock = lock
    holding = asyncio.Event()
    release = asyncio.Event()
    order: list[str] = []

    async def holder() -> None:
        async with adapter.transaction() as tx:
            await adapter.create_jobs([new_job("first")], tx=tx)
            order.append("holder in")
            holding.set()
            await release.wait()
            order.append("holder out")

    async def writer() -> None:
        await adapter.create_jobs([new_job("second")])
        order.append("writer done")

    hold = asyncio.create_task(holder())
    await asyncio.wait_for(holding.wait(), 10)
    write = asyncio.create_task(writer())
    await asyncio.wait_for(lock.contended.wait(), 10)  # the write waits for the write lock
    assert not write.done(), "a write must wait for the open transaction"
    release.set()
    await asyncio.wait_for(asyncio.gather(hold, write), 10)
    assert order == ["holder in", "holder out", "writer done"]


async def test_many_tasks_writing_at_once(adapter: SqliteStateAdapter) -> None:
    async def one(i: int) -> None:
        if i % 2:
            await adapter.create_jobs([new_job(i)])
        else:
            async with adapter.transaction() as tx:
                await adapter.create_jobs([new_job(i)], tx=tx)

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(200))), 60)
    assert len((await adapter.list_jobs(JobFilter(), limit=500)).items) == 200


async def test_the_transaction_object_runs_your_own_sql(adapter: SqliteStateAdapter) -> None:
    p = adapter.table_prefix
    async with adapter.transaction() as tx:
        (created,) = await adapter.create_jobs([new_job("x")], tx=tx)
        await tx.execute("CREATE TABLE IF NOT EXISTS app_note (job_id TEXT, note TEXT)")
        await tx.executemany("INSERT INTO app_note VALUES (?, ?)", [(created.job.id, "hello")])
        rows = await tx.execute(
            f"SELECT n.note FROM app_note n JOIN {p}job j ON j.id = n.job_id WHERE j.id = ?",
            (created.job.id,),
        )
        assert rows == [("hello",)]
        count = await tx.run(lambda raw: raw.execute(f"SELECT count(*) FROM {p}job").fetchone()[0])
        assert count == 1
        connection = await tx.aiosqlite_connection()
        async with connection.execute("SELECT count(*) FROM app_note") as cursor:
            assert await cursor.fetchone() == (1,)
    with pytest.raises(UsageError, match="ended"):
        await tx.execute("SELECT 1")
    with pytest.raises(UsageError, match="ended"):
        await adapter.get_job(created.job.id, tx=tx)


async def test_a_transaction_of_another_database_is_refused(
    adapter: SqliteStateAdapter, tmp_path: Path
) -> None:
    async with open_adapter(tmp_path / "other.db") as other, other.transaction() as foreign:
        with pytest.raises(UsageError, match="not a transaction of this"):
            await adapter.get_job("x", tx=foreign)


# -- busy handling (another process holds the write lock) ------------------------------------------


async def test_writes_wait_for_another_process(db_path: Path) -> None:
    async with open_adapter(db_path) as adapter:
        seen = await statements_of(adapter)
        with external_write_lock(db_path) as other:
            write = asyncio.create_task(adapter.create_jobs([new_job()]))
            # a second BEGIN IMMEDIATE on the writer: the first found the file locked, and the
            # writer is polling for the lock
            await until(
                lambda: seen.count("BEGIN IMMEDIATE") >= 2, "the writer to poll for the lock"
            )
            assert not write.done(), "the write must wait for the other process's lock"
            other.execute("COMMIT")
            (created,) = await asyncio.wait_for(write, 10)
        assert await adapter.get_job(created.job.id) is not None


async def test_busy_transactions_are_retried_with_backoff(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="queuert.sqlite")
    async with open_adapter(db_path, busy_timeout=0.02, busy_retries=100) as adapter:
        with external_write_lock(db_path) as other:
            write = asyncio.create_task(adapter.create_jobs([new_job()]))
            opened = asyncio.create_task(_create_in_transaction(adapter))
            await until(
                lambda: any("retrying" in r.getMessage() for r in caplog.records),
                "a busy write to be retried",
            )
            assert not write.done() and not opened.done()
            other.execute("COMMIT")
            await asyncio.wait_for(asyncio.gather(write, opened), 30)
    messages = [r.getMessage() for r in caplog.records]
    assert any("retrying" in m for m in messages), messages
    assert all(getattr(r, "queuert_attempt", 1) >= 1 for r in caplog.records)


async def _create_in_transaction(adapter: SqliteStateAdapter) -> None:
    async with adapter.transaction() as tx:
        await adapter.create_jobs([new_job()], tx=tx)


async def test_busy_retries_are_bounded(db_path: Path) -> None:
    async with open_adapter(db_path, busy_timeout=0.01, busy_retries=2) as adapter:
        with external_write_lock(db_path):
            with pytest.raises(DBAPI.OperationalError, match="locked"):
                await asyncio.wait_for(adapter.create_jobs([new_job()]), 30)
            with pytest.raises(DBAPI.OperationalError, match="locked"):
                async with adapter.transaction() as tx:
                    await asyncio.wait_for(adapter.create_jobs([new_job()], tx=tx), 30)
        # the writer is usable again once the lock is gone
        await adapter.create_jobs([new_job()])
        assert len((await adapter.list_jobs(JobFilter())).items) == 1


# -- transactions, savepoints, cancellation -----------------------------------------------------


async def test_write_lock_is_taken_before_the_first_statement(adapter: SqliteStateAdapter) -> None:
    seen = await statements_of(adapter)
    async with adapter.transaction() as tx:
        await adapter.get_job("nope", tx=tx)
        async with adapter.savepoint(tx):
            pass  # an unused savepoint never reaches SQLite
        async with adapter.savepoint(tx) as sp:
            await adapter.create_jobs([new_job()], tx=sp)
    assert seen[0] == "BEGIN IMMEDIATE", seen
    assert seen[-1] == "COMMIT"
    assert sum(1 for s in seen if s.startswith("SAVEPOINT queuert_sp")) == 1, seen


async def test_an_empty_transaction_costs_nothing(adapter: SqliteStateAdapter) -> None:
    seen = await statements_of(adapter)
    async with adapter.transaction():
        pass
    with pytest.raises(RuntimeError):
        async with adapter.transaction():
            raise RuntimeError("boom")
    assert seen == []


async def test_savepoint_rolls_back_only_its_own_work(adapter: SqliteStateAdapter) -> None:
    async with adapter.transaction() as tx:
        (kept,) = await adapter.create_jobs([new_job("kept")], tx=tx)
        with pytest.raises(RuntimeError):
            async with adapter.savepoint(tx) as sp:
                await adapter.create_jobs([new_job("dropped")], tx=sp)
                async with adapter.savepoint(sp) as inner:
                    await adapter.create_jobs([new_job("dropped too")], tx=inner)
                raise RuntimeError("boom")
        async with adapter.savepoint(tx) as sp:
            (also,) = await adapter.create_jobs([new_job("also kept")], tx=sp)
    listed = {j.id for j in (await adapter.list_jobs(JobFilter())).items}
    assert listed == {kept.job.id, also.job.id}


async def test_cancelling_a_transaction_rolls_it_back(adapter: SqliteStateAdapter) -> None:
    started = asyncio.Event()
    created: list[str] = []

    async def body() -> None:
        async with adapter.transaction() as tx:
            (job,) = await adapter.create_jobs([new_job()], tx=tx)
            created.append(job.job.id)
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(body())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await adapter.get_job(created[0]) is None
    async with adapter.transaction() as tx:  # the writer is free and clean
        await adapter.create_jobs([new_job()], tx=tx)
    assert len((await adapter.list_jobs(JobFilter())).items) == 1


async def test_cancelling_an_operation_in_flight(adapter: SqliteStateAdapter) -> None:
    for _ in range(20):
        task = asyncio.create_task(_create_in_transaction(adapter))
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # whatever happened to the cancelled ones, the writer still works and nothing is half-done
    await adapter.create_jobs([new_job("after")])
    jobs = (await adapter.list_jobs(JobFilter(), limit=100)).items
    assert jobs[0].input == "after"
    assert all(j.status == "ready" for j in jobs)


async def test_close(db_path: Path) -> None:
    adapter = await SqliteStateAdapter.open(db_path)
    await adapter.migrate()
    await adapter.close()
    await adapter.close()  # idempotent
    with pytest.raises(StateAdapterClosedError):
        await adapter.get_job("x")
    with pytest.raises(StateAdapterClosedError):
        await adapter.create_jobs([new_job()])
    with pytest.raises(StateAdapterClosedError):
        async with adapter.transaction():
            pass
    with pytest.raises(StateAdapterClosedError):
        await adapter.migrate()


# -- several processes on one file --------------------------------------------------------------------


async def test_processes_claim_each_job_exactly_once(db_path: Path, table_prefix: str) -> None:
    async with open_adapter(db_path, table_prefix=table_prefix) as adapter:
        total = 1200
        for start in range(0, total, 200):
            await adapter.create_jobs(
                [new_job(i, type_name="sqlite.proc") for i in range(start, start + 200)]
            )
        modes = ["drain", "drain_atomic", "drain", "drain_atomic"]
        results = await run_processes(
            [[mode, str(db_path), table_prefix, str(n)] for n, mode in enumerate(modes)]
        )
        done = Counter(job_id for ids in results for job_id in ids)
        duplicates = [job_id for job_id, n in done.items() if n > 1]
        assert duplicates == [], f"jobs processed by two processes: {duplicates[:5]}"
        assert len(done) == total
        assert all(len(ids) > 0 for ids in results), [len(ids) for ids in results]
        jobs = (await adapter.list_jobs(JobFilter(), limit=total + 1)).items
        assert len(jobs) == total
        assert all(j.status == "completed" and j.attempt == 1 for j in jobs)
        owner = {job_id: f"{modes[n]}-{n}" for n, ids in enumerate(results) for job_id in ids}
        assert all(j.output == owner[j.id] == j.completed_by for j in jobs)


async def test_a_forgotten_close_does_not_hang_interpreter_exit(db_path: Path) -> None:
    script = (
        "import asyncio\n"
        "from queuert_sqlite import SqliteStateAdapter\n"
        "async def main():\n"
        f"    adapter = await SqliteStateAdapter.open({str(db_path)!r})\n"
        "    await adapter.migrate()\n"
        "    globals()['kept'] = adapter  # never closed\n"
        "asyncio.run(main())\n"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    assert await asyncio.wait_for(proc.wait(), 60) == 0


async def test_checkpoints_run_in_the_background(db_path: Path) -> None:
    async with open_adapter(db_path, checkpoint_interval=0) as adapter:
        provider = adapter.provider
        assert provider._checkpointer is not None
        writer = provider._writer
        auto = await writer.call(
            lambda: writer.raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        assert auto == 0, "the writer leaves checkpoints to the background connection"
        for i in range(20):
            await adapter.create_jobs([new_job(i)])
            task = provider._checkpoint_task
            assert task is not None
            await task
        wal = Path(str(db_path) + "-wal")
        frames = await provider._checkpointer.call(
            lambda: provider._checkpointer.raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()  # type: ignore[union-attr]
        )
        assert frames[0] == 0 and frames[1] == frames[2], frames  # everything checkpointed
        assert await asyncio.to_thread(wal.exists)
    async with open_adapter(db_path, checkpoint_interval=None) as adapter:
        assert adapter.provider._checkpointer is None
        writer = adapter.provider._writer
        auto = await writer.call(
            lambda: writer.raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        assert auto == 1000
