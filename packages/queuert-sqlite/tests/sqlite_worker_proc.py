"""A worker OS process for the multi-process test (not collected as a test).

Usage: ``python sqlite_worker_proc.py DATABASE LOG``. Runs a queuert Worker (concurrency 4) on the
SQLite file until SIGTERM; every handler execution appends ``<job id> <type>`` to LOG.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from typing import Any

from queuert import (
    Attempt,
    Backoff,
    ChainResult,
    Client,
    Continues,
    EntryJobType,
    JobType,
    Lease,
    Worker,
)
from queuert_sqlite import from_url
from typing_extensions import Never


@dataclass
class Order:
    n: int


@dataclass
class Total:
    n: int
    doubled: int


class Ship(JobType[Order, Total], name="mp_ship"):
    pass


class Place(EntryJobType[Order, Never], Continues[Ship], ChainResult[Total], name="mp_place"):
    pass


async def main(database: str, log: Any) -> None:
    state = await from_url(f"sqlite:///{database}")
    client: Client[Any] = Client(state, job_types=[Place, Ship])
    worker: Worker[Any] = Worker(
        client,
        name=f"proc{os.getpid()}",
        concurrency=4,
        poll_interval=0.05,
        lease=Lease(duration=30, renew_every=10),
        backoff=Backoff(initial=0.01, maximum=0.1),
    )

    @worker.handler(Place)
    async def place(attempt: Attempt[Place]) -> None:
        log.write(f"{attempt.job.id} place\n")
        await attempt.complete(Ship(Order(attempt.input.n)))

    @worker.handler(Ship)
    async def ship(attempt: Attempt[Ship]) -> None:
        log.write(f"{attempt.job.id} ship\n")
        await asyncio.sleep(0)
        await attempt.complete(Total(attempt.input.n, attempt.input.n * 2))

    print("ready", flush=True)
    try:
        await worker.run()
    finally:
        await client.close()
        await state.close()


if __name__ == "__main__":
    with open(sys.argv[2], "a", buffering=1) as log_file:  # line-buffered appends
        asyncio.run(main(sys.argv[1], log_file))
