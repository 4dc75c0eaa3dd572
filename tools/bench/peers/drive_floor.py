"""The floors: asyncpg alone, no queue (run in the workspace's environment; see compare.py).

On a minimal table with one index (``id uuid PRIMARY KEY, payload text``), on one held connection:
``insert-autocommit`` (one-row ``INSERT``, each its own transaction), ``insert-tx`` (``BEGIN``,
the one-row ``INSERT``, ``COMMIT``) and ``insert-batch`` (100 rows per ``INSERT ... SELECT FROM
unnest(...)``, each its own transaction). Nothing any queue does for an enqueue can be cheaper on
the same driver, server and machine.
"""

from __future__ import annotations

import json
import uuid

import asyncpg
from driver_protocol import BATCH, Clock, main, payload

INSERT = "INSERT INTO floor_job (id, payload) VALUES ($1, $2)"


async def setup(dsn: str, jobs: int, clock: Clock) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE floor_job (id uuid PRIMARY KEY, payload text NOT NULL)")
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


if __name__ == "__main__":
    main(
        {
            "setup": setup,
            "insert-autocommit": insert_autocommit,
            "insert-tx": insert_tx,
            "insert-batch": insert_batch,
        },
        asyncpg.__version__,
    )
