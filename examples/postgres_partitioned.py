"""PostgreSQL's partitioned layout: an installation moved to it, and retention dropping a partition.

    QUEUERT_PG_DSN=postgresql://user@host/db uv run python -m examples.postgres_partitioned

The job table is partitioned by the creation time of each chain (its id is a time-ordered UUIDv7),
one partition per day here. An existing installation is moved with ``migrate_to_partitioned()``
(stop the workers first: it copies every job under an exclusive lock); a new one is created with
``migrate()`` on an adapter opened with ``partitioning=``. A retention run then drops whole partitions
whose chains all closed before its cutoff, instead of deleting their rows.

To have history to expire at once, the example starts its first chains with ids made a week ago (as
if they had been started then). Today's partition is in use, so it stays; retention deletes its
expired chains row by row. The tables live in a schema of the example's own, dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
from queuert import Attempt, Client, EntryJobType, Retention, Worker
from queuert.observability import ChainsExpired, Event, LoggingObservability
from queuert_postgres import Partitioning, PgStateAdapter

DSN = os.environ.get("QUEUERT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Ping:
    n: int


class Echo(EntryJobType[Ping, Ping], name="partitioned_echo"):
    pass


async def echo(attempt: Attempt[Echo]) -> Ping:
    return attempt.input


def made_days_ago(days: int) -> str:
    """A UUIDv7 as a client made it ``days`` ago."""
    ms = int((time.time() - days * 86_400) * 1000)
    rand = random.getrandbits(74)
    return str(
        uuid.UUID(
            int=(ms << 80)
            | (0x7 << 76)
            | ((rand >> 62) << 64)
            | (0b10 << 62)
            | (rand & ((1 << 62) - 1))
        )
    )


class Watch(LoggingObservability):
    def __init__(self) -> None:
        super().__init__()
        self.dropped = asyncio.Event()
        self.expired: list[ChainsExpired] = []

    def emit(self, event: Event) -> None:
        super().emit(event)
        if isinstance(event, ChainsExpired):
            self.expired.append(event)
            if event.partitions:
                self.dropped.set()


async def main(dsn: str = DSN, schema: str | None = None) -> dict[str, Any]:
    schema = schema or f"ex_part_{uuid.uuid4().hex[:12]}"
    watch = Watch()
    try:
        # an installation in the default layout, with a week of history and a chain of today
        async with await PgStateAdapter.connect(dsn, schema=schema) as plain:
            await plain.migrate()
            async with Client(plain, job_types=[Echo]) as client:
                old = await client.start_chains(
                    [Echo(Ping(i), id=made_days_ago(7)) for i in range(3)]
                )
                today = await client.start_chain(Echo(Ping(9)))
                async with Worker(client, handlers={Echo: echo}):
                    for chain in [*old, today]:
                        await client.wait_for_chain(chain, timeout=10)

        # moved to daily partitions (the history before today goes to one partition)
        daily = Partitioning(timedelta(days=1), ahead=2)
        async with await PgStateAdapter.connect(dsn, schema=schema, partitioning=daily) as state:
            moved = await state.migrate_to_partitioned()
            partitions = [b.name for b in await state.partitions()]
            async with Client(state, job_types=[Echo], observability=watch) as client:
                retention = Retention(closed_for=timedelta(0), every=timedelta(seconds=0.2))
                async with Worker(client, handlers={Echo: echo}, retention=retention):
                    await asyncio.wait_for(watch.dropped.wait(), timeout=20)
                old_left = [await client.get_chain(c.id) is not None for c in old]
            after = [b.name for b in await state.partitions()]
        dropped = next(e for e in watch.expired if e.partitions)
        return {
            "applied": moved.applied,
            "partitions": partitions,
            "after": after,
            "dropped_chains": dropped.deleted,
            "old_left": sum(old_left),
        }
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


if __name__ == "__main__":
    print(asyncio.run(main()))
