"""A read that fails while decoding its rows must not leave the reader connection on an old snapshot:
the next read sees what was committed since. A timestamp edited by hand into something that is not a
time used to be such a failure; it now reads as a job marked ``unreadable``."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from queuert import Client, EntryJobType
from queuert_sqlite import SqliteStateAdapter


@dataclass
class N:
    value: int


class Job(EntryJobType[N, N], name="failed_reads_job"):
    pass


async def _write_created_at(path: Path, table: str, job_id: str, text: str) -> None:
    def write() -> None:
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
            conn.execute(f"UPDATE {table} SET created_at = ? WHERE id = ?", (text, job_id))
            conn.commit()

    await asyncio.to_thread(write)


async def test_a_time_that_is_no_time_is_read_marked_and_leaves_no_stale_snapshot(
    adapter: SqliteStateAdapter, db_path: Path
) -> None:
    async with Client(adapter, job_types=[Job]) as client:
        chains = await _start(client, 30)
        await _write_created_at(db_path, f"{adapter.table_prefix}job", chains[0], "not a time")
        listed = (await client.list_jobs(limit=50)).items
        assert len(listed) == 30
        (bad,) = [job for job in listed if job.unreadable is not None]
        assert bad.id == chains[0] and "stored created_at cannot be read" in bad.unreadable
        (fresh,) = await _start(client, 1)
        assert await client.get_chain(fresh) is not None, "the read after the failure was stale"


async def _start(client: Client[object], count: int) -> list[str]:
    async with client.transaction() as tx:
        return [c.id for c in await client.start_chains([Job(N(i)) for i in range(count)], tx=tx)]


async def test_a_scheduled_at_that_is_no_time_does_not_fail_the_idle_workers_wait(
    adapter: SqliteStateAdapter, db_path: Path
) -> None:
    """``next_due`` (what an idle worker sleeps on) reads the earliest scheduled time; a value edited
    into something that is not a time made it raise, and the worker fell into its error backoff.
    It now answers "unknown" (the worker sleeps its poll interval)."""
    async with Client(adapter, job_types=[Job]) as client:
        (chain,) = await _start(client, 1)

        def write() -> None:
            with contextlib.closing(sqlite3.connect(db_path, timeout=10)) as conn:
                conn.execute(
                    f"UPDATE {adapter.table_prefix}job SET scheduled_at = 'tomorrow' WHERE id = ?",
                    (chain,),
                )
                conn.commit()

        await asyncio.to_thread(write)
        assert await adapter.next_due([Job.type_name]) is None


async def test_a_read_that_raises_with_its_cursor_open_leaves_no_stale_snapshot(
    adapter: SqliteStateAdapter,
) -> None:
    """Any read function that raises while its cursor is still open (a decode error half-way
    through its rows) used to keep the cursor alive in the exception's traceback: its statement was
    never reset, the reader kept its read transaction, and every later read on that reader saw the
    old snapshot, missing everything committed since."""
    provider = adapter.provider
    table = f"{adapter.table_prefix}job"

    def fail_half_way(raw: sqlite3.Connection) -> None:
        cursor = raw.execute(f"SELECT id FROM {table}")
        cursor.fetchone()
        raise ValueError("this row cannot be decoded")

    async with Client(adapter, job_types=[Job]) as client:
        await _start(client, 5)
        for _ in range(provider.options.readers + 1):  # every reader has failed at least once
            with pytest.raises(ValueError, match="cannot be decoded"):
                await provider.run_read(fail_half_way)
        await _start(client, 1)

        def count(raw: sqlite3.Connection) -> int:
            row = raw.execute(f"SELECT count(*) FROM {table}").fetchone()
            return int(row[0])

        seen = [await provider.run_read(count) for _ in range(provider.options.readers * 2)]
        assert seen == [6] * len(seen), f"reads after the failures saw old snapshots: {seen}"


@pytest.mark.parametrize("text", ["not a time", "2000-01-01 not a time", "0"])
@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_paging_goes_on_past_a_created_at_that_is_no_time(
    adapter: SqliteStateAdapter, db_path: Path, text: str, order: str
) -> None:
    """A page that ends on a job whose ``created_at`` is not a time gives a cursor at the time that
    job reads as (1970), not where its text sorts: the next page must still start right after it,
    so that paging a page at a time lists every job and chain exactly once."""
    async with Client(adapter, job_types=[Job]) as client:
        chains = await _start(client, 4)
        await _write_created_at(db_path, f"{adapter.table_prefix}job", chains[1], text)
        for lister in (client.list_jobs, client.list_chains):
            seen: list[str] = []
            cursor = None
            for _ in range(10):
                page = await lister(limit=1, order=order, cursor=cursor)
                seen += [item.id for item in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert sorted(seen) == sorted(chains), f"{lister.__name__} ({order}) listed {seen}"
