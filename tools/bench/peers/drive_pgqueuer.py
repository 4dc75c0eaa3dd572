"""Drives pgqueuer through its public API (run in pgqueuer's own environment; see compare.py).

The enqueuer uses one asyncpg connection (``AsyncpgDriver``); the worker is a ``QueueManager`` on
one asyncpg connection, dequeuing in batches of 10 (``batch_size``), its default completion logging
and LISTEN/NOTIFY wake-ups.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pgqueuer
from driver_protocol import BATCH, Clock, main, payload
from pgqueuer import AsyncpgDriver, Queries, QueueManager

ENTRYPOINT = "bench"


def encode(index: int) -> bytes:
    return json.dumps(payload(index)).encode()


async def setup(dsn: str, jobs: int, clock: Clock) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await Queries(AsyncpgDriver(conn)).install()
    finally:
        await conn.close()


async def enqueue_single(dsn: str, jobs: int, clock: Clock) -> None:
    conn = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(conn))
    clock.start()
    for i in range(jobs):
        await queries.enqueue(ENTRYPOINT, encode(i), 0)
    await conn.close()
    clock.stop()


async def enqueue_batch(dsn: str, jobs: int, clock: Clock) -> None:
    conn = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(conn))
    clock.start()
    for offset in range(0, jobs, BATCH):
        count = min(BATCH, jobs - offset)
        await queries.enqueue(
            [ENTRYPOINT] * count, [encode(offset + i) for i in range(count)], [0] * count
        )
    await conn.close()
    clock.stop()


async def work(dsn: str, jobs: int, clock: Clock) -> None:
    conn = await asyncpg.connect(dsn)
    manager = QueueManager(Queries(AsyncpgDriver(conn)))
    done = 0

    @manager.entrypoint(ENTRYPOINT)  # type: ignore[untyped-decorator]
    async def handle(job: Any) -> None:
        nonlocal done
        done += 1
        if done == jobs:
            manager.shutdown.set()  # run() returns once the completions are written

    clock.start()
    await manager.run(batch_size=10)
    clock.stop()
    if not conn.is_closed():
        await conn.close()
    assert done == jobs, f"processed {done} of {jobs}"


if __name__ == "__main__":
    main(
        {
            "setup": setup,
            "enqueue-single": enqueue_single,
            "enqueue-batch": enqueue_batch,
            "work": work,
        },
        pgqueuer.__version__,
    )
