"""Short writes on the event loop's thread: taken only when nothing can make them wait."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from itertools import pairwise
from pathlib import Path

import pytest
from queuert.errors import StateAdapterClosedError
from queuert.state import Completion, JobFilter
from queuert_sqlite import SqliteStateAdapter
from queuert_sqlite._adapter import INLINE_BATCH
from queuert_sqlite._provider import _INLINE_STREAK, SqliteProvider
from sqlite_helpers import LEASE, TYPE, external_write_lock, new_job


@asynccontextmanager
async def opened(path: Path | str, **options: object) -> AsyncIterator[SqliteStateAdapter]:
    adapter = await SqliteStateAdapter.open(path, **options)  # type: ignore[arg-type]
    try:
        await adapter.migrate()
        await adapter.provider.run_write(
            lambda raw: raw.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY)")
        )
        yield adapter
    finally:
        await adapter.close()


def insert(n: int) -> Callable[[sqlite3.Connection], int]:
    """Insert ``n`` into ``t``; returns the id of the thread it ran on."""

    def op(raw: sqlite3.Connection) -> int:
        raw.execute("INSERT INTO t (n) VALUES (?)", (n,))
        return threading.get_ident()

    return op


async def numbers(provider: SqliteProvider) -> list[int]:
    rows = await provider.run_read(lambda raw: raw.execute("SELECT n FROM t ORDER BY n").fetchall())
    return [row[0] for row in rows]


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds (made true by another task of the test)."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_an_idle_writer_runs_short_writes_on_the_loop_thread(db_path: Path) -> None:
    loop_thread = threading.get_ident()
    async with opened(db_path) as adapter:
        provider = adapter.provider
        assert provider.inline_possible
        writer = provider._writer
        before = writer.submitted
        assert await provider.run_write(insert(1), inline=True) == loop_thread
        assert writer.submitted == before, "no call to the writer's thread"
        # the client's and the worker's short writes
        (single,) = await adapter.create_jobs([new_job("a")])
        batch = await adapter.create_jobs([new_job(i) for i in range(INLINE_BATCH)])
        (added,) = await adapter.add_blockers([(single.job.id, [batch[0].job.chain_id])])
        assert added.job.status == "blocked"
        assert writer.submitted == before
        # claims and group commits take the thread (they batch what gathers meanwhile)
        claimed = await adapter.claim_jobs(leases=LEASE, limit=10, worker_id="w")
        assert len(claimed.jobs) == 10
        assert writer.submitted == before + 1
        renewal = await adapter.renew_leases(
            {j.id: LEASE[TYPE] for j in claimed.jobs}, worker_id="w"
        )
        assert len(renewal.renewed) == 10
        first, *rest = claimed.jobs
        done = await adapter.complete_job(first.id, outcome="completed", worker_id="w", owner="w")
        assert done.job.status == "completed"
        rescheduled = await adapter.reschedule_job(rest[0].id, schedule=None, error="again")
        assert rescheduled.status == "ready"
        assert writer.submitted == before + 1
        results = await adapter.complete_jobs(
            [Completion(j.id, output=1) for j in rest[1:]], worker_id="w", owner="w"
        )
        assert all(r is not None and r.job.status == "completed" for r in results)
        assert writer.submitted == before + 2
        # a write not marked short, and a batch over the bound, take the writer's thread
        assert await provider.run_write(insert(2)) != loop_thread
        await adapter.create_jobs([new_job(i) for i in range(INLINE_BATCH + 1)])
        assert writer.submitted == before + 4
        assert await numbers(provider) == [1, 2]
        page = await adapter.list_jobs(JobFilter(), limit=1000)
        assert len(page.items) == 1 + INLINE_BATCH + INLINE_BATCH + 1
        completed = await adapter.list_jobs(JobFilter(statuses=["completed"]), limit=1000)
        assert len(completed.items) == 9


async def test_a_held_transaction_makes_the_write_wait_and_take_the_thread(
    db_path: Path,
) -> None:
    loop_thread = threading.get_ident()
    async with opened(db_path) as adapter:
        provider = adapter.provider
        async with adapter.transaction() as tx:
            await tx.execute("INSERT INTO t (n) VALUES (1)")
            waiting = asyncio.create_task(provider.run_write(insert(2), inline=True))
            await until(lambda: bool(provider._write_lock._waiters))
            assert not waiting.done()
        assert await waiting != loop_thread
        assert await numbers(provider) == [1, 2]


async def test_a_call_still_running_on_the_thread_keeps_writes_off_the_loop(
    db_path: Path,
) -> None:
    """A task cancelled while its write runs on the thread releases the lock at once; the write
    runs to its end there, and the next short write queues behind it on the thread."""
    loop_thread = threading.get_ident()
    async with opened(db_path) as adapter:
        provider = adapter.provider
        started, release = threading.Event(), threading.Event()
        order: list[int] = []

        def slow(raw: sqlite3.Connection) -> None:
            started.set()
            release.wait(30)
            raw.execute("INSERT INTO t (n) VALUES (1)")
            order.append(1)

        cancelled = asyncio.create_task(provider.run_write(slow))
        assert await asyncio.to_thread(started.wait, 30)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert not provider._write_lock.locked() and not provider._writer.idle

        def after(raw: sqlite3.Connection) -> int:
            order.append(2)
            return insert(2)(raw)

        queued = asyncio.create_task(provider.run_write(after, inline=True))
        await until(lambda: provider._write_lock.locked())  # it took the thread path
        release.set()
        assert await queued != loop_thread
        assert order == [1, 2]
        assert await numbers(provider) == [1, 2]
        assert provider._writer.idle
        assert await provider.run_write(insert(3), inline=True) == loop_thread


async def test_another_connection_holding_the_write_lock_sends_the_write_to_the_thread(
    db_path: Path,
) -> None:
    loop_thread = threading.get_ident()
    async with opened(db_path) as adapter:
        provider = adapter.provider
        writer = provider._writer
        job = new_job("after the other commits")
        with external_write_lock(db_path) as other:
            other.execute("INSERT INTO t (n) VALUES (1)")
            before = writer.submitted
            start = asyncio.create_task(adapter.create_jobs([job]))
            # BEGIN IMMEDIATE failed at once on the loop; the thread polls for the lock
            await until(lambda: writer.submitted == before + 1)
            assert not start.done()
            other.execute("COMMIT")
            (created,) = await start
        assert created.job.id == job.id
        assert await provider.run_write(insert(2), inline=True) == loop_thread
        assert await numbers(provider) == [1, 2]
        page = await adapter.list_jobs(JobFilter(), limit=10)
        assert [j.id for j in page.items] == [job.id], "written once"


@pytest.mark.parametrize(
    "options",
    [
        {"inline_writes": False},
        {"synchronous": "FULL"},
        {"checkpoint_interval": None},
        {"journal_mode": "DELETE"},
    ],
    ids=["off", "synchronous-full", "no-background-checkpoints", "not-wal"],
)
async def test_writes_that_could_wait_for_a_lock_or_an_fsync_never_run_on_the_loop(
    db_path: Path, options: dict[str, object]
) -> None:
    loop_thread = threading.get_ident()
    async with opened(db_path, **options) as adapter:
        provider = adapter.provider
        assert not provider.inline_possible
        assert await provider.run_write(insert(1), inline=True) != loop_thread
        await adapter.create_jobs([new_job()])
        assert await numbers(provider) == [1]


async def test_a_private_in_memory_database_writes_on_the_loop() -> None:
    loop_thread = threading.get_ident()
    async with opened(":memory:") as adapter:
        assert adapter.provider.inline_possible
        assert await adapter.provider.run_write(insert(1), inline=True) == loop_thread
        assert await numbers(adapter.provider) == [1]
    async with opened("file:shared?mode=memory&cache=shared") as adapter:
        assert not adapter.provider.inline_possible


async def test_a_failing_write_on_the_loop_leaves_nothing_and_raises_its_error(
    db_path: Path,
) -> None:
    async with opened(db_path) as adapter:
        provider = adapter.provider

        def fails(raw: sqlite3.Connection) -> None:
            raw.execute("INSERT INTO t (n) VALUES (1)")
            raw.execute("INSERT INTO t (n) VALUES (1)")

        with pytest.raises(sqlite3.IntegrityError):
            await provider.run_write(fails, inline=True)
        assert not provider._writer.raw.in_transaction
        assert await numbers(provider) == []
        assert await provider.run_write(insert(1), inline=True) == threading.get_ident()
        assert await numbers(provider) == [1]
        await provider.close()
        with pytest.raises(StateAdapterClosedError):
            await provider.run_write(insert(2), inline=True)


async def test_the_loop_gets_a_turn_between_writes_in_a_row(db_path: Path) -> None:
    """A task writing in a loop never waits on the thread; other tasks still run between its
    writes, after at most a few of them."""
    async with opened(db_path) as adapter:
        provider = adapter.provider
        written: list[int] = []
        seen_at: list[int] = []

        async def other() -> None:
            while len(written) < 3 * _INLINE_STREAK:
                seen_at.append(len(written))
                await asyncio.sleep(0)

        watcher = asyncio.create_task(other())
        await asyncio.sleep(0)
        for n in range(3 * _INLINE_STREAK):
            await provider.run_write(insert(n), inline=True)
            written.append(n)
        await watcher
        gaps = [b - a for a, b in pairwise(seen_at)]
        assert gaps and max(gaps) <= _INLINE_STREAK
        assert await numbers(provider) == list(range(3 * _INLINE_STREAK))
