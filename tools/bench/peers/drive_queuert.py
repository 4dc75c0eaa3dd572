"""Drives queuert the way the peers are driven (run in the workspace's environment; see compare.py).

``COMMAND`` is followed by the notify adapter in the system's name: ``drive_queuert.py work DSN JOBS
postgres`` (``PgNotifyAdapter``: LISTEN/NOTIFY, what a deployment with several processes uses) or
``none`` (``NoopNotifyAdapter``: workers find jobs by polling). The enqueuer starts each chain (or
batch of 100) without a transaction where ``start_chain`` takes no ``tx`` (it then commits on its
own), else in a transaction of its own (``client.transaction()``); the worker runs at concurrency
10 with a no-op handler that returns its output.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from dataclasses import dataclass
from typing import Any

from driver_protocol import BATCH, CONCURRENCY, Clock, main, payload
from queuert import (
    Attempt,
    Client,
    EntryJobType,
    NoopNotifyAdapter,
    Worker,
    __version__,
)
from queuert.backends import open_state_adapter

NOTIFY = sys.argv.pop() if len(sys.argv) > 4 else "postgres"
TX_OPTIONAL = (
    inspect.signature(Client.start_chain).parameters["tx"].default is not inspect.Parameter.empty
)


@dataclass
class Item:
    index: int


@dataclass
class Done:
    ok: bool


class PeerJob(EntryJobType[Item, Done], name="peer_job"):
    pass


async def open_client(dsn: str) -> tuple[Client[Any], list[Any]]:
    state = await open_state_adapter(dsn)
    notify: Any
    if NOTIFY == "postgres":
        from queuert_postgres import PgNotifyAdapter

        notify = PgNotifyAdapter(dsn)
    else:
        notify = NoopNotifyAdapter()
    client: Client[Any] = Client(state, job_types=[PeerJob], notify=notify)
    return client, [client, notify, state]


async def close(resources: list[Any]) -> None:
    for resource in resources:
        await resource.close()


async def setup(dsn: str, jobs: int, clock: Clock) -> None:
    state = await open_state_adapter(dsn)
    await state.migrate()
    await state.close()


async def enqueue_single(dsn: str, jobs: int, clock: Clock) -> None:
    client, resources = await open_client(dsn)
    clock.start()
    for i in range(jobs):
        job = PeerJob(Item(**payload(i)))
        if TX_OPTIONAL:
            await client.start_chain(job)  # type: ignore[call-arg, unused-ignore]
        else:
            async with client.transaction() as tx:
                await client.start_chain(job, tx=tx)
    await close(resources)  # wake-ups still being sent are part of the cost
    clock.stop()


async def enqueue_batch(dsn: str, jobs: int, clock: Clock) -> None:
    client, resources = await open_client(dsn)
    clock.start()
    for offset in range(0, jobs, BATCH):
        count = min(BATCH, jobs - offset)
        batch = [PeerJob(Item(**payload(offset + i))) for i in range(count)]
        if TX_OPTIONAL:
            await client.start_chains(batch)  # type: ignore[call-arg, unused-ignore]
        else:
            async with client.transaction() as tx:
                await client.start_chains(batch, tx=tx)
    await close(resources)
    clock.stop()


async def work(dsn: str, jobs: int, clock: Clock) -> None:
    client, resources = await open_client(dsn)
    worker: Worker[Any] = Worker(client, concurrency=CONCURRENCY)
    finished = asyncio.Event()
    done = 0

    @worker.handler(PeerJob)
    async def handle(attempt: Attempt[PeerJob]) -> Done:
        nonlocal done
        done += 1
        if done == jobs:
            finished.set()
        return Done(True)

    clock.start()
    await worker.start()
    await finished.wait()
    await worker.close()  # writes the completions still waiting for their group commit
    clock.stop()
    await close(resources)
    assert done == jobs, f"processed {done} of {jobs}"


if __name__ == "__main__":
    main(
        {
            "setup": setup,
            "enqueue-single": enqueue_single,
            "enqueue-batch": enqueue_batch,
            "work": work,
        },
        __version__,
    )
