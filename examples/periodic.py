"""Periodic chains: a worker starts a chain at every tick of an interval, once per tick however many
workers (in however many processes) run the same ``Periodic``.

    uv run python -m examples.periodic

Here two workers share a store and both run ``Periodic(SendDigest, every=0.2 s)``: each tick's chain is
started once (its deduplication key names the tick). A worker that was down across ticks starts only
the most recent missed tick when it comes back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from queuert import Attempt, Client, EntryJobType, InMemoryStateAdapter, Periodic, Worker


@dataclass
class Window:
    ends_at: str


@dataclass
class Digest:
    lines: int


class SendDigest(EntryJobType[Window, Digest], name="send_digest"):
    pass


def digest_of(tick: datetime) -> Window:
    """The input of the chain of ``tick``."""
    return Window(ends_at=tick.isoformat())


async def main() -> dict[str, Any]:
    sent: list[str] = []
    three_sent = asyncio.Event()

    async def send_digest(attempt: Attempt[SendDigest]) -> Digest:
        sent.append(attempt.input.ends_at)
        if len(sent) >= 3:
            three_sent.set()
        return Digest(lines=len(sent))

    every_fifth_of_a_second = Periodic(SendDigest, every=timedelta(seconds=0.2), input=digest_of)
    async with InMemoryStateAdapter() as state, Client(state) as client:
        workers = [
            Worker(client, handlers={SendDigest: send_digest}, periodic=[every_fifth_of_a_second])
            for _ in range(2)
        ]
        for worker in workers:
            await worker.start()
        await asyncio.wait_for(three_sent.wait(), timeout=10)  # three ticks' digests were sent
        for worker in workers:
            await worker.close()
        chains = (await client.list_chains(type_names=[SendDigest], order="asc")).items
        for chain in chains:
            print(chain.root.deduplication_key, chain.status)
        keys = [chain.root.deduplication_key for chain in chains]
        return {"chains": len(chains), "distinct_ticks": len(set(keys))}


if __name__ == "__main__":
    print(asyncio.run(main()))
