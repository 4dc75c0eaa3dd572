"""The floors: asyncpg alone, no queue (run in the workspace's environment; see compare.py).

On a minimal table with one index (``id uuid PRIMARY KEY, payload text``), on one held connection:
``insert-autocommit`` (one-row ``INSERT``, each its own transaction), ``insert-tx`` (``BEGIN``,
the one-row ``INSERT``, ``COMMIT``) and ``insert-batch`` (100 rows per ``INSERT ... SELECT FROM
unnest(...)``, each its own transaction). Nothing any queue does for an enqueue can be cheaper on
the same driver, server and machine.

``work`` is the floor of processing: on a table of jobs with a status, a lease holder and an
output (``floor_work``, with one partial index on the ready jobs), filled beforehand by ``fill``
(not measured), one connection claims ready jobs in one statement (``UPDATE ... WHERE id IN
(SELECT ... FOR UPDATE SKIP LOCKED LIMIT n) RETURNING``) whenever at least 10 more may be in
flight (at most 30 are, as in queuert's worker at concurrency 10 with its prefetch), and decodes
their JSON inputs; another completes whatever was claimed meanwhile in one
statement (``UPDATE ... FROM unnest(...)``, guarded by the lease holder) with a JSON output each.
Those are the statements a queue's worker at concurrency 10 needs for no-op jobs, batched as it
can batch them, and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
from driver_protocol import BATCH, CONCURRENCY, Clock, main, payload

INSERT = "INSERT INTO floor_job (id, payload) VALUES ($1, $2)"


CLAIM = """
UPDATE floor_work SET status = 'running', leased_by = $2,
    leased_until = now() + interval '60 seconds', attempt = attempt + 1
WHERE id IN (
    SELECT id FROM floor_work WHERE status = 'ready' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
)
RETURNING id, payload
"""

COMPLETE = """
UPDATE floor_work w SET status = 'completed', output = c.output, leased_by = NULL,
    leased_until = NULL, completed_at = now()
FROM unnest($1::uuid[], $2::text[]) AS c (id, output)
WHERE w.id = c.id AND w.leased_by = $3
"""


async def setup(dsn: str, jobs: int, clock: Clock) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE floor_job (id uuid PRIMARY KEY, payload text NOT NULL)")
        await conn.execute(
            "CREATE TABLE floor_work (id uuid PRIMARY KEY, payload text NOT NULL,"
            " status text NOT NULL DEFAULT 'ready', attempt int NOT NULL DEFAULT 0,"
            " leased_by text, leased_until timestamptz, output text, completed_at timestamptz)"
        )
        await conn.execute(
            "CREATE INDEX floor_work_ready ON floor_work (id) WHERE status = 'ready'"
        )
    finally:
        await conn.close()


async def insert_autocommit(dsn: str, jobs: int, clock: Clock) -> None:
    conn = await asyncpg.connect(dsn)
    clock.start()
    for i in range(jobs):
        await conn.execute(INSERT, uuid.uuid4(), json.dumps(payload(i)))
    await conn.close()
    clock.stop()


async def insert_tx(dsn: str, jobs: int, clock: Clock) -> None:
    conn = await asyncpg.connect(dsn)
    clock.start()
    for i in range(jobs):
        async with conn.transaction():
            await conn.execute(INSERT, uuid.uuid4(), json.dumps(payload(i)))
    await conn.close()
    clock.stop()


async def insert_batch(dsn: str, jobs: int, clock: Clock) -> None:
    conn = await asyncpg.connect(dsn)
    clock.start()
    for offset in range(0, jobs, BATCH):
        count = min(BATCH, jobs - offset)
        await conn.execute(
            "INSERT INTO floor_job (id, payload) SELECT * FROM unnest($1::uuid[], $2::text[])",
            [uuid.uuid4() for _ in range(count)],
            [json.dumps(payload(offset + i)) for i in range(count)],
        )
    await conn.close()
    clock.stop()


async def fill(dsn: str, jobs: int, clock: Clock) -> None:
    conn = await asyncpg.connect(dsn)
    clock.start()
    for offset in range(0, jobs, BATCH):
        count = min(BATCH, jobs - offset)
        await conn.execute(
            "INSERT INTO floor_work (id, payload) SELECT * FROM unnest($1::uuid[], $2::text[])",
            [uuid.uuid4() for _ in range(count)],
            [json.dumps(payload(offset + i)) for i in range(count)],
        )
    await conn.close()
    clock.stop()


IN_FLIGHT = 3 * CONCURRENCY
"""Jobs claimed and not yet completed, at most: as many as queuert's worker holds at concurrency 10
(10 running, up to 20 claimed ahead)."""


async def work(dsn: str, jobs: int, clock: Clock) -> None:
    claimer, completer = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    worker = uuid.uuid4().hex
    pending: list[tuple[uuid.UUID, str]] = []
    in_flight = 0
    claimable, completable = asyncio.Event(), asyncio.Event()

    async def claim() -> None:
        nonlocal in_flight
        claimed = 0
        while claimed < jobs:
            while in_flight > IN_FLIGHT - CONCURRENCY:
                claimable.clear()
                await claimable.wait()
            rows = await claimer.fetch(CLAIM, IN_FLIGHT - in_flight, worker)
            for row in rows:  # the no-op handler: reads its input, returns an output
                job_input = json.loads(row["payload"])
                pending.append((row["id"], json.dumps({"ok": job_input["index"] >= 0})))
            in_flight += len(rows)
            claimed += len(rows)
            completable.set()

    async def complete() -> None:
        nonlocal in_flight
        done = 0
        while done < jobs:
            await completable.wait()
            completable.clear()
            batch = pending[:]
            del pending[:]
            if batch:
                await completer.execute(
                    COMPLETE, [i for i, _ in batch], [o for _, o in batch], worker
                )
            in_flight -= len(batch)
            done += len(batch)
            claimable.set()

    clock.start()
    await asyncio.gather(claim(), complete())
    clock.stop()
    await claimer.close()
    await completer.close()


if __name__ == "__main__":
    main(
        {
            "setup": setup,
            "insert-autocommit": insert_autocommit,
            "insert-tx": insert_tx,
            "insert-batch": insert_batch,
            "fill": fill,
            "work": work,
        },
        asyncpg.__version__,
    )
