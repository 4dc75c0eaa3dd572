"""Floors: what the machine, the drivers and the databases cost before queuert adds anything.

The processing benchmark (bench.py) says how fast queuert is; this one says how fast anything written
in Python with the same drivers could be on the same machine, so that a target can be checked against
what is reachable. Every figure is the median of several repetitions in one process (the range is in
brackets), per operation:

    uv run python tools/bench/floor.py                       # machine, SQLite and client floors
    uv run python tools/bench/floor.py --dsn postgresql://postgres@127.0.0.1/test   # and PostgreSQL
    uv run python tools/bench/floor.py --dsn postgresql://... --memory-cycles 120   # and asyncpg's heap

- thread round trip: two OS threads pass a token through a queue and back (two context switches).
- asyncio -> thread hop: ``await`` of a function run on an aiosqlite connection's thread; every SQLite
  call from asyncio costs at least this (queuert's SQLite provider packs each operation in one hop).
- SQLite insert per row: ``executemany`` of 100 rows into queuert's job table, called directly on the
  thread (no asyncio), in a ``BEGIN IMMEDIATE`` ... ``COMMIT`` of their own; one-row transaction, no
  asyncio: ``BEGIN IMMEDIATE``, one insert, ``COMMIT`` in a plain loop.
- SQLite one-row transaction in 1 hop / in 2 hops: ``BEGIN IMMEDIATE``, one insert into queuert's job
  table and ``COMMIT`` from asyncio with no queuert code, all in one hop (what a queuert transaction
  that only starts chains costs: the INSERT rides with the ``COMMIT``), or split in two (the same with
  a statement of your own before the start: ``BEGIN`` with that statement, the rest at the end).
- PostgreSQL round trip: ``SELECT 1`` through asyncpg; one-row transaction: ``BEGIN``, an insert into
  a two-column table and ``COMMIT`` on one held connection, no pool (what a one-chain transaction
  costs at least); insert per row: 100 rows in one ``INSERT ... SELECT FROM unnest(...)`` into that
  table.
- MySQL / MariaDB (``--dsn mysql://...``), through aiomysql on one held connection: round trip
  (``SELECT 1``); one-row transaction (``BEGIN``, an insert into a two-column table, ``COMMIT``);
  insert per row (100 rows in one multi-row ``INSERT``); and a claim-shaped transaction: ``BEGIN``, a
  locking read of 10 rows, an ``UPDATE`` of them and ``COMMIT`` (what claiming a batch costs at
  least with four round trips), per row; and atomic processing at concurrency 10 on 11 connections:
  a claimer taking up to the free slots' worth of rows per claim transaction, ten handlers closing
  one row each in a transaction of its own (``BEGIN``, locking read, ``UPDATE``, ``COMMIT``): the
  statements of queuert's atomic mode, issued by bare aiomysql at the same concurrency.
- with ``--memory-cycles N``: the Python heap that asyncpg alone retains over N cycles of opening a
  pool, running 50 transactions and closing it (what bench.py's memory figures for PostgreSQL
  include before queuert adds anything).
- client per chain: queuert's client starting chains on the in-memory adapter (no database at all), one
  by one in a transaction each and in batches of 100: the Python cost of the client and of a store
  written in Python, without any I/O.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import queue
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench import BenchJob, Item
from queuert import Client, InMemoryStateAdapter, NoopNotifyAdapter
from queuert.ids import uuid7
from queuert.observability import NoopObservability

REPEATS = 5


def report(name: str, samples: list[float], unit: str = "us") -> float:
    median = statistics.median(samples)
    print(f"  {name:<44}{median:>10.1f} {unit}   ({min(samples):.1f}..{max(samples):.1f})")
    return median


def timed(fn: Callable[[], None], count: int) -> list[float]:
    """Microseconds per operation of ``fn`` (which runs ``count`` operations), per repetition."""
    out = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) / count * 1e6)
    return out


async def atimed(fn: Callable[[], Awaitable[None]], count: int) -> list[float]:
    out = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t0) / count * 1e6)
    return out


# -- machine ---------------------------------------------------------------------------------------


def thread_round_trip(count: int = 20_000) -> list[float]:
    there: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    back: queue.SimpleQueue[int] = queue.SimpleQueue()

    def echo() -> None:
        while (token := there.get()) is not None:
            back.put(token)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()

    def run() -> None:
        for i in range(count):
            there.put(i)
            back.get()

    try:
        return timed(run, count)
    finally:
        there.put(None)
        thread.join()


# -- SQLite ----------------------------------------------------------------------------------------

_INSERT = (
    "INSERT INTO job (id, type_name, chain_id, chain_type_name, chain_index, input, created_at, "
    "scheduled_at) VALUES (?, 'floor_job', ?, 'floor_job', 0, '{\"index\": 1}', "
    "'2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')"
)


def queuert_schema(path: str) -> sqlite3.Connection:
    from queuert_sqlite._schema import apply_migrations  # the real schema, indexes included

    raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("PRAGMA synchronous = NORMAL")
    raw.execute("PRAGMA foreign_keys = ON")
    raw.execute("BEGIN IMMEDIATE")
    apply_migrations(raw, "")
    raw.execute("COMMIT")
    return raw


def sqlite_insert_per_row(path: str, batches: int = 50) -> list[float]:
    raw = queuert_schema(path)

    def run() -> None:
        for _ in range(batches):
            rows = [(i, i) for i in (uuid7() for _ in range(100))]
            raw.execute("BEGIN IMMEDIATE")
            raw.executemany(_INSERT, rows)
            raw.execute("COMMIT")

    try:
        return timed(run, batches * 100)
    finally:
        raw.close()


def sqlite_one_row_tx(path: str, count: int = 3_000) -> list[float]:
    raw = queuert_schema(path)

    def run() -> None:
        for _ in range(count):
            new = uuid7()
            raw.execute("BEGIN IMMEDIATE")
            raw.execute(_INSERT, (new, new))
            raw.execute("COMMIT")

    try:
        return timed(run, count)
    finally:
        raw.close()


async def sqlite_hops(path: str, count: int = 3_000) -> dict[str, list[float]]:
    import aiosqlite

    raw_holder: list[sqlite3.Connection] = []

    def connector() -> sqlite3.Connection:
        raw_holder.append(queuert_schema(path))
        return raw_holder[0]

    aio = aiosqlite.Connection(connector, 64)
    await aio
    raw = raw_holder[0]
    hop: Callable[[Callable[[], Any]], Awaitable[Any]] = aio._execute

    def noop() -> None:
        return None

    async def hops() -> None:
        for _ in range(count):
            await hop(noop)

    def begin_insert() -> None:
        new = uuid7()
        raw.execute("BEGIN IMMEDIATE")
        raw.execute(_INSERT, (new, new))

    def commit() -> None:
        raw.execute("COMMIT")

    def whole() -> None:
        begin_insert()
        commit()

    async def one_hop() -> None:
        for _ in range(count):
            await hop(whole)

    async def two_hops() -> None:
        for _ in range(count):
            await hop(begin_insert)
            await hop(commit)

    try:
        return {
            "hop": await atimed(hops, count),
            "tx1": await atimed(one_hop, count),
            "tx2": await atimed(two_hops, count),
        }
    finally:
        await aio.close()


# -- PostgreSQL --------------------------------------------------------------------------------------


async def postgres(dsn: str, count: int = 2_000) -> dict[str, list[float]]:
    import asyncpg

    table = f"queuert_floor_{os.getpid()}"
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute(f"CREATE TABLE {table} (id text PRIMARY KEY, body text NOT NULL)")

            async def select1() -> None:
                for _ in range(count):
                    await conn.fetchval("SELECT 1")

            round_trip = await atimed(select1, count)

            async def one_row_tx() -> None:
                for _ in range(count):
                    async with conn.transaction():
                        await conn.execute(f"INSERT INTO {table} VALUES ($1, 'x')", uuid7())

            tx = await atimed(one_row_tx, count)

        async def batches() -> None:
            for _ in range(count // 100):
                ids = [uuid7() for _ in range(100)]
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute(
                        f"INSERT INTO {table} SELECT * FROM unnest($1::text[], $2::text[])",
                        ids,
                        ids,
                    )

        per_row = await atimed(batches, count // 100 * 100)
        async with pool.acquire() as conn:
            await conn.execute(f"DROP TABLE {table}")
        return {"rt": round_trip, "tx": tx, "row": per_row}
    finally:
        await pool.close()


async def mysql(dsn: str, count: int = 2_000) -> dict[str, list[float]]:
    import aiomysql
    from queuert_mysql._url import parse_url

    table = f"queuert_floor_{os.getpid()}"
    conn = await aiomysql.connect(**parse_url(dsn)[0], autocommit=True)
    try:
        cur = await conn.cursor()
        await cur.execute(
            f"CREATE TABLE {table} (id CHAR(36) PRIMARY KEY, body VARCHAR(20) NOT NULL, n INT)"
        )

        async def select1() -> None:
            for _ in range(count):
                await cur.execute("SELECT 1")
                await cur.fetchall()

        round_trip = await atimed(select1, count)

        async def one_row_tx() -> None:
            for _ in range(count):
                await cur.execute("BEGIN")
                await cur.execute(f"INSERT INTO {table} VALUES (%s, 'x', 0)", (uuid7(),))
                await cur.execute("COMMIT")

        tx = await atimed(one_row_tx, count)

        async def batches() -> None:
            for _ in range(count // 100):
                rows = [v for _ in range(100) for v in (uuid7(), "x")]
                await cur.execute(
                    f"INSERT INTO {table} VALUES " + ", ".join(["(%s, %s, 0)"] * 100), rows
                )

        per_row = await atimed(batches, count // 100 * 100)

        async def claims() -> None:
            for _ in range(count // 10):
                await cur.execute("BEGIN")
                await cur.execute(
                    f"SELECT id FROM {table} WHERE n = 0 ORDER BY id LIMIT 10 "
                    "FOR UPDATE SKIP LOCKED"
                )
                ids = [row[0] for row in await cur.fetchall()]
                await cur.execute(
                    f"UPDATE {table} SET n = 1 WHERE id IN ({', '.join(['%s'] * len(ids))})", ids
                )
                await cur.execute("COMMIT")

        claim = await atimed(claims, count // 10 * 10)
        await cur.execute(f"DROP TABLE {table}")
        return {"rt": round_trip, "tx": tx, "row": per_row, "claim": claim}
    finally:
        conn.close()


async def mysql_processing(
    dsn: str, jobs: int = 3_000, concurrency: int = 10
) -> dict[str, list[float]]:
    """Atomic processing with no queuert code, at queuert's concurrency: a claimer on a connection
    of its own claims up to ``concurrency`` free slots' worth of rows at a time (``BEGIN``, a
    locking ``SKIP LOCKED`` read, an ``UPDATE`` writing the lease, ``COMMIT``) and ``concurrency``
    handlers, each on a connection of its own, close one row each per transaction (``BEGIN``, a
    locking read of the row, an ``UPDATE`` writing the outcome, ``COMMIT``): the statements of
    queuert's atomic mode, per processed row, in microseconds."""
    import aiomysql
    from queuert_mysql._url import parse_url

    args = parse_url(dsn)[0]
    table = f"queuert_floor_p_{os.getpid()}"
    admin = await aiomysql.connect(**args, autocommit=True)
    conns = [await aiomysql.connect(**args, autocommit=True) for _ in range(concurrency + 1)]
    samples: list[float] = []
    try:
        async with admin.cursor() as cur:
            await cur.execute(
                f"CREATE TABLE {table} (id CHAR(36) PRIMARY KEY, n INT NOT NULL, KEY (n, id))"
            )
        for conn in conns:
            async with conn.cursor() as cur:
                await cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        for _ in range(REPEATS):
            async with admin.cursor() as cur:
                await cur.execute(f"DELETE FROM {table}")
                for offset in range(0, jobs, 500):
                    ids = [uuid7() for _ in range(min(500, jobs - offset))]
                    await cur.execute(
                        f"INSERT INTO {table} VALUES " + ", ".join(["(%s, 0)"] * len(ids)), ids
                    )
            work: asyncio.Queue[str | None] = asyncio.Queue()
            free = asyncio.Semaphore(concurrency)

            async def claimer(work: asyncio.Queue[str | None], free: asyncio.Semaphore) -> None:
                cur = await conns[0].cursor()
                while True:
                    await free.acquire()
                    room = 1
                    while free.locked() is False and room < concurrency:
                        await free.acquire()
                        room += 1
                    await cur.execute("BEGIN")
                    await cur.execute(
                        f"SELECT id FROM {table} WHERE n = 0 ORDER BY n, id LIMIT {room} "
                        "FOR UPDATE SKIP LOCKED"
                    )
                    ids = [row[0] for row in await cur.fetchall()]
                    if ids:
                        await cur.execute(
                            f"UPDATE {table} SET n = 1 WHERE id IN "
                            f"({', '.join(['%s'] * len(ids))})",
                            ids,
                        )
                    await cur.execute("COMMIT")
                    for _ in range(room - len(ids)):
                        free.release()
                    if not ids:
                        for _ in range(concurrency):
                            work.put_nowait(None)
                        return
                    for job_id in ids:
                        work.put_nowait(job_id)

            async def handler(
                conn: Any, work: asyncio.Queue[str | None], free: asyncio.Semaphore
            ) -> None:
                cur = await conn.cursor()
                while (job_id := await work.get()) is not None:
                    await cur.execute("BEGIN")
                    await cur.execute(f"SELECT n FROM {table} WHERE id = %s FOR UPDATE", (job_id,))
                    await cur.fetchall()
                    await cur.execute(f"UPDATE {table} SET n = 2 WHERE id = %s", (job_id,))
                    await cur.execute("COMMIT")
                    free.release()

            started = time.perf_counter()
            await asyncio.gather(claimer(work, free), *(handler(c, work, free) for c in conns[1:]))
            samples.append((time.perf_counter() - started) / jobs * 1e6)
        async with admin.cursor() as cur:
            await cur.execute(f"DROP TABLE {table}")
        return {"process": samples}
    finally:
        for conn in [admin, *conns]:
            conn.close()


async def asyncpg_memory(dsn: str, cycles: int) -> list[tuple[int, float]]:
    """Python heap retained (KiB, ``tracemalloc``) after repeated cycles of asyncpg alone: open a pool
    of up to 10 connections, run 50 concurrent one-statement transactions, close it. The baseline is
    taken after one warm-up cycle; the result holds a reading after every tenth of the cycles."""
    import gc
    import tracemalloc

    import asyncpg

    async def cycle() -> None:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10)

        async def one() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.fetch("SELECT $1::int", 1)

        await asyncio.gather(*[one() for _ in range(50)])
        await pool.close()

    tracemalloc.start()
    try:
        await cycle()
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        readings = []
        for i in range(1, cycles + 1):
            await cycle()
            gc.collect()
            if i % max(cycles // 10, 1) == 0:
                readings.append((i, (tracemalloc.get_traced_memory()[0] - base) / 1024))
        return readings
    finally:
        tracemalloc.stop()


# -- the client alone --------------------------------------------------------------------------------


async def client_alone(count: int = 5_000) -> dict[str, list[float]]:
    state = InMemoryStateAdapter()
    client: Client[Any] = Client(
        state, job_types=[BenchJob], notify=NoopNotifyAdapter(), observability=NoopObservability()
    )

    async def single() -> None:
        for i in range(count):
            async with client.transaction() as tx:
                await client.start_chain(BenchJob(Item(i)), tx=tx)

    async def batched() -> None:
        for offset in range(0, count, 100):
            async with client.transaction() as tx:
                await client.start_chains([BenchJob(Item(offset + i)) for i in range(100)], tx=tx)

    try:
        return {"single": await atimed(single, count), "batch": await atimed(batched, count)}
    finally:
        await client.close()
        await state.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dsn", help="a PostgreSQL or MySQL URL: also measure that database's floors"
    )
    parser.add_argument(
        "--memory-cycles",
        type=int,
        default=0,
        help="with --dsn: also the Python heap asyncpg alone retains over this many pool cycles",
    )
    args = parser.parse_args()
    print(
        f"queuert floors: python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cpus, SQLite {sqlite3.sqlite_version}; medians of {REPEATS} repetitions"
    )
    print("machine")
    report("thread round trip (2 context switches)", thread_round_trip())
    with tempfile.TemporaryDirectory() as tmp:
        print("SQLite (WAL, synchronous=NORMAL, queuert's job table and indexes)")
        row = report("insert per row, 100 per transaction", sqlite_insert_per_row(f"{tmp}/a.db"))
        report("one-row transaction, no asyncio", sqlite_one_row_tx(f"{tmp}/c.db"))
        hops = asyncio.run(sqlite_hops(f"{tmp}/b.db"))
        hop = report("asyncio -> thread hop", hops["hop"])
        tx1 = report("one-row transaction in 1 hop", hops["tx1"])
        tx2 = report("one-row transaction in 2 hops", hops["tx2"])
    client = asyncio.run(client_alone())
    print("queuert client on the in-memory adapter (no database)")
    report("per chain, one by one", client["single"])
    report("per chain, in batches of 100", client["batch"])
    print("ceilings with no queuert code at all (1e6 / the database floors above)")
    print(
        f"  SQLite one by one:    {1e6 / tx1:>10,.0f} chains/s   (1 hop; "
        f"with a statement of yours first, 2 hops: {1e6 / tx2:,.0f})"
    )
    print(f"  SQLite batches of 100:{1e6 / (row + hop / 100):>10,.0f} chains/s")
    if args.dsn and args.dsn.startswith(("mysql://", "mariadb://")):
        my = asyncio.run(mysql(args.dsn))
        print("MySQL / MariaDB (aiomysql, server defaults)")
        report("round trip (SELECT 1)", my["rt"])
        tx = report("one-row transaction (BEGIN, INSERT, COMMIT)", my["tx"])
        my_row = report("insert per row, 100 per statement", my["row"])
        claim = report(
            "claim of 10 rows (BEGIN, locking read, UPDATE, COMMIT), per row", my["claim"]
        )
        print(f"  ceiling one by one:   {1e6 / tx:>10,.0f} chains/s   (no queuert code)")
        print(f"  ceiling batches:      {1e6 / my_row:>10,.0f} chains/s   (three-column table)")
        print(
            f"  ceiling claims:       {1e6 / claim:>10,.0f} jobs/s     (claims alone, batches of 10)"
        )
        processing = asyncio.run(mysql_processing(args.dsn))
        atomic = report(
            "atomic processing at concurrency 10 (claims + a transaction per job), per job",
            processing["process"],
        )
        print(f"  ceiling atomic:       {1e6 / atomic:>10,.0f} jobs/s     (no queuert code)")
    elif args.dsn:
        pg = asyncio.run(postgres(args.dsn))
        print("PostgreSQL (asyncpg, server defaults)")
        report("round trip (SELECT 1)", pg["rt"])
        tx = report("one-row transaction (BEGIN, INSERT, COMMIT)", pg["tx"])
        pg_row = report("insert per row, 100 per statement", pg["row"])
        print(f"  ceiling one by one:   {1e6 / tx:>10,.0f} chains/s   (no queuert code)")
        print(f"  ceiling batches:      {1e6 / pg_row:>10,.0f} chains/s   (two-column table)")
        if args.memory_cycles:
            readings = asyncio.run(asyncpg_memory(args.dsn, args.memory_cycles))
            print("  heap retained by asyncpg alone (open pool, 50 transactions, close), KiB:")
            print("   " + "  ".join(f"{i}: {kib:.1f}" for i, kib in readings))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
