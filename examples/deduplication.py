"""Deduplication: start a chain only if no matching chain exists; otherwise get the existing one.

    uv run python -m examples.deduplication

* ``scope="open"`` (default): matches an *open* chain of the same type with the same key;
* ``scope="any"``: matches closed chains too, optionally only those created within ``window``;
* keys are per chain type;
* a recurring chain schedules its next run under the same key while it is itself still open, with
  ``exclude_chain_ids=[its own chain id]``; other attempts to register the job find the next run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from queuert import (
    Attempt,
    Chain,
    Client,
    Deduplication,
    EntryJobType,
    InMemoryStateAdapter,
    Schedule,
    TxContext,
    Worker,
)


@dataclass
class Account:
    account_id: str


@dataclass
class Synced:
    account_id: str


class SyncAccount(EntryJobType[Account, Synced]):
    pass


class ExportAccount(EntryJobType[Account, Synced]):
    pass


@dataclass
class Tick:
    run: int


class Heartbeat(EntryJobType[Tick, Tick]):
    """Recurring: every run starts the next one (a new chain), until run 3."""


def build_worker(client: Client[Any], runs: list[int], third_run: asyncio.Event) -> Worker[Any]:
    worker: Worker[Any] = Worker(client, concurrency=2)

    @worker.handler(SyncAccount)
    async def sync(attempt: Attempt[SyncAccount]) -> Synced:
        return Synced(attempt.input.account_id)

    @worker.handler(Heartbeat)
    async def heartbeat(attempt: Attempt[Heartbeat]) -> None:
        tick = attempt.input
        runs.append(tick.run)
        if tick.run == 3:
            third_run.set()

        async def schedule_next(ctx: TxContext[Any]) -> Tick:
            if tick.run < 3:
                await ctx.start_chain(
                    Heartbeat(
                        Tick(tick.run + 1),
                        schedule=Schedule(after=0.1),
                        deduplication=Deduplication(
                            "heartbeat", exclude_chain_ids=[attempt.job.chain_id]
                        ),
                    )
                )
            return tick

        # The next run is started in the transaction that completes this one.
        await attempt.complete(schedule_next)

    return worker


async def main() -> dict[str, Any]:
    runs: list[int] = []
    third_run = asyncio.Event()
    # ExportAccount has no handler here: the client lists it so that it can start it.
    async with InMemoryStateAdapter() as state, Client(state, job_types=[ExportAccount]) as client:
        worker = build_worker(client, runs, third_run)
        return await demonstrate(client, worker, runs, third_run)


async def demonstrate(
    client: Client[Any], worker: Worker[Any], runs: list[int], third_run: asyncio.Event
) -> dict[str, Any]:
    async def start(job: SyncAccount | ExportAccount | Heartbeat) -> Chain[Any]:
        async with client.transaction() as tx:
            return await client.start_chain(job, tx=tx)

    def show(label: str, chain: Chain[Any], first: Chain[Any]) -> None:
        same = "the same chain" if chain.id == first.id else "a new chain"
        print(f"{label:<42} deduplicated={chain.deduplicated!s:<5} -> {same}")

    key = Deduplication("acct-1")  # scope="open"
    first = await start(SyncAccount(Account("acct-1"), deduplication=key))
    again = await start(SyncAccount(Account("acct-1"), deduplication=key))
    show("same key while the first is open", again, first)
    other_type = await start(ExportAccount(Account("acct-1"), deduplication=key))
    show("same key, another chain type", other_type, first)

    async with worker:
        await client.wait_for_chain(first, timeout=10)
        after_close = await start(SyncAccount(Account("acct-1"), deduplication=key))
        show("scope='open' after it closed", after_close, first)
        await client.wait_for_chain(after_close, timeout=10)

        any_scope = Deduplication("acct-1", scope="any", window=timedelta(minutes=5))
        recent = await start(SyncAccount(Account("acct-1"), deduplication=any_scope))
        show("scope='any' within 5 minutes", recent, after_close)
        await asyncio.sleep(0.2)
        short = Deduplication("acct-1", scope="any", window=timedelta(seconds=0.1))
        outside = await start(SyncAccount(Account("acct-1"), deduplication=short))
        show("scope='any', window 0.1 s, 0.2 s later", outside, after_close)

        # Registering the recurring job twice starts it once.
        beat = Deduplication("heartbeat")
        heartbeat_chain = await start(Heartbeat(Tick(1), deduplication=beat))
        duplicate = await start(Heartbeat(Tick(1), deduplication=beat))
        show("recurring job registered twice", duplicate, heartbeat_chain)
        await asyncio.wait_for(third_run.wait(), timeout=10)
    heartbeats = (await client.list_chains(type_names=[Heartbeat])).items
    print(f"heartbeat runs {runs}, one chain per run: {len(heartbeats)} chains")
    return {
        "again": again.deduplicated,
        "other_type": other_type.deduplicated,
        "after_close": after_close.deduplicated,
        "recent": recent.deduplicated,
        "outside": outside.deduplicated,
        "duplicate": duplicate.deduplicated,
        "runs": runs,
    }


if __name__ == "__main__":
    asyncio.run(main())
