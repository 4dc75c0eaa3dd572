"""Attempt middleware and graceful shutdown.

    uv run python -m examples.middleware_and_shutdown

Middleware wraps every attempt (the first in the list is the outermost) and can hand values to the
handler through ``attempt.context``. On shutdown (``worker.stop()``, SIGINT/SIGTERM under
``worker.run()``, or ``close()``) the worker stops claiming and sets ``attempt.signal.reason`` to
``"shutdown"``; handlers have ``shutdown_timeout`` to finish before they are cancelled and
their jobs go back to ready. Here a long batch job reacts by continuing its chain with the items it
has not processed yet, and a second worker picks them up.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from queuert import (
    Attempt,
    Client,
    Continues,
    EntryJobType,
    InMemoryStateAdapter,
    Worker,
)


@dataclass
class Batch:
    items: list[int]
    processed: int = 0
    workers: list[str] = field(default_factory=list)


@dataclass
class BatchDone:
    processed: int
    workers: list[str]


class ProcessBatch(EntryJobType[Batch, BatchDone], Continues["ProcessBatch"]):
    pass


async def request_id(attempt: Attempt[Any], call_next: Callable[[], Awaitable[None]]) -> None:
    """Outer middleware: gives every attempt an id the handler can read."""
    attempt.context["request_id"] = uuid.uuid4().hex[:8]
    await call_next()


async def timing(attempt: Attempt[Any], call_next: Callable[[], Awaitable[None]]) -> None:
    """Inner middleware: measures the handler (an exception raised here would fail the attempt)."""
    started = time.monotonic()
    try:
        await call_next()
    finally:
        elapsed = time.monotonic() - started
        print(f"  [{attempt.context['request_id']}] {attempt.job.type_name} took {elapsed:.2f}s")


def build_worker(client: Client[Any], name: str, progressed: asyncio.Event) -> Worker[Any]:
    worker: Worker[Any] = Worker(
        client, name=name, shutdown_timeout=2, middleware=[request_id, timing]
    )

    @worker.handler(ProcessBatch)
    async def process(attempt: Attempt[ProcessBatch]) -> BatchDone | ProcessBatch:
        batch = attempt.input
        processed = batch.processed
        for position, _item in enumerate(batch.items):
            if attempt.signal.reason == "shutdown":
                rest = Batch(batch.items[position:], processed, [*batch.workers, name])
                print(f"  {name}: shutting down, handing over {len(rest.items)} items")
                return ProcessBatch(rest)  # continue the chain with the rest
            await asyncio.sleep(0.02)  # the real work on one item
            processed += 1
            if processed == 5:
                progressed.set()
        return BatchDone(processed, [*batch.workers, name])

    return worker


async def main() -> BatchDone:
    progressed = asyncio.Event()
    async with InMemoryStateAdapter() as state, Client(state) as client:
        first = build_worker(client, "worker-a", progressed)
        async with client.transaction() as tx:
            chain = await client.start_chain(ProcessBatch(Batch(list(range(30)))), tx=tx)

        running = asyncio.create_task(first.run())  # what `queuert worker module:attr` runs
        await progressed.wait()
        print("stopping worker-a (as SIGTERM would)")
        first.stop()
        await running  # returns once every task of worker-a has ended

        print("starting worker-b")
        async with build_worker(client, "worker-b", progressed):
            done = await client.wait_for_chain(chain, timeout=10)
    print(f"done: {done.processed} items, by {' then '.join(done.workers)}")
    return done


if __name__ == "__main__":
    asyncio.run(main())
