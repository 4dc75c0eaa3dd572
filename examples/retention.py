"""Retention: the workers delete chains that have been closed for longer than ``closed_for``.

    uv run python -m examples.retention

A retention run is a periodic chain (type ``queuert_retention``): one per tick across all workers,
run by one of them. It deletes, oldest first and in batches, the chains whose last job closed before
the cutoff, except those that an open chain still waits for. Here ``closed_for`` is zero so the
example's chains expire at once; in production it is days.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from queuert import Attempt, Client, EntryJobType, InMemoryStateAdapter, Retention, Worker
from queuert.observability import ChainsExpired, Event, LoggingObservability


@dataclass
class Ping:
    n: int


class Echo(EntryJobType[Ping, Ping], name="retention_echo"):
    pass


class Watch(LoggingObservability):
    """Logs every event, and notes what retention deleted."""

    def __init__(self) -> None:
        super().__init__()
        self.expired = 0
        self.deleted_some = asyncio.Event()

    def emit(self, event: Event) -> None:
        super().emit(event)
        if isinstance(event, ChainsExpired) and event.deleted:
            self.expired += event.deleted
            self.deleted_some.set()


async def echo(attempt: Attempt[Echo]) -> Ping:
    return attempt.input


async def main() -> dict[str, Any]:
    watch = Watch()
    async with InMemoryStateAdapter() as state, Client(state, observability=watch) as client:
        keep_nothing = Retention(closed_for=timedelta(0), every=timedelta(seconds=0.2))
        worker = Worker(client, handlers={Echo: echo}, retention=keep_nothing)
        async with client.transaction() as tx:
            chains = await client.start_chains([Echo(Ping(i)) for i in range(3)], tx=tx)
        async with worker:
            for chain in chains:
                await client.wait_for_chain(chain, timeout=10)
            await asyncio.wait_for(watch.deleted_some.wait(), timeout=10)
        left = [await client.get_chain(chain.id) for chain in chains]
        return {"expired": watch.expired, "left": sum(c is not None for c in left)}


if __name__ == "__main__":
    print(asyncio.run(main()))
