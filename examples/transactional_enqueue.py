"""Transactional enqueue: a chain started in a transaction that rolls back never existed.

    uv run python -m examples.transactional_enqueue

Shows ``client.transaction()``, a rollback, a savepoint that undoes only its own share,
``client.hooks()`` around a transaction you open yourself (with PostgreSQL that would be your asyncpg
connection's or SQLAlchemy session's transaction: ``async with client.hooks(conn): async with
conn.transaction(): ...``), and a start with no transaction at all, which commits on its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from queuert import Client, EntryJobType, InMemoryStateAdapter, RecordingObservability


@dataclass
class Order:
    order_id: str


@dataclass
class Invoice:
    number: str


class IssueInvoice(EntryJobType[Order, Invoice]):
    pass


class PaymentDeclined(Exception):
    pass


async def main() -> dict[str, bool]:
    events = RecordingObservability()  # keeps the lifecycle events it receives, in order
    exists: dict[str, bool] = {}
    # This process only starts chains (no worker): the client lists the types it starts.
    async with (
        InMemoryStateAdapter() as state,
        Client(state, job_types=[IssueInvoice], observability=events) as client,
    ):
        # 1. The business write fails after the chain was started: everything rolls back.
        chain_id = ""
        try:
            async with client.transaction() as tx:
                chain = await client.start_chain(IssueInvoice(Order("o-1")), tx=tx)
                chain_id = chain.id
                raise PaymentDeclined("card declined")  # e.g. your INSERT INTO orders failed
        except PaymentDeclined:
            pass
        exists["o-1"] = await client.get_chain(chain_id) is not None
        print(f"o-1 rolled back: chain exists={exists['o-1']}, events={events.names()}")

        # 2. A savepoint undoes its own share only; the rest of the transaction commits.
        async with client.transaction() as tx:
            kept = await client.start_chain(IssueInvoice(Order("o-2")), tx=tx)
            try:
                async with client.savepoint(tx) as inner:
                    dropped = await client.start_chain(IssueInvoice(Order("o-3")), tx=inner)
                    raise PaymentDeclined("o-3 declined")
            except PaymentDeclined:
                pass
            print(f"inside the transaction, nothing announced yet: events={events.names()}")
        exists["o-2"] = await client.get_chain(kept.id) is not None
        exists["o-3"] = await client.get_chain(dropped.id) is not None
        print(f"savepoint: o-2 exists={exists['o-2']}, o-3 exists={exists['o-3']}")
        print(f"after commit: events={events.names()}")

        # 3. Your own transaction: open the hooks *around* it so that notifications and events
        #    are published after your COMMIT (and dropped on rollback).
        async with client.hooks() as hooks, state.transaction() as tx:
            own = await client.start_chain(IssueInvoice(Order("o-4")), tx=tx, hooks=hooks)
        exists["o-4"] = await client.get_chain(own.id) is not None
        print(f"own transaction: o-4 exists={exists['o-4']}")

        # 4. Nothing else to write: without tx= the start commits on its own (on PostgreSQL one
        #    autocommit INSERT), then announces itself like any commit.
        alone = await client.start_chain(IssueInvoice(Order("o-5")))
        exists["o-5"] = await client.get_chain(alone.id) is not None
        print(f"no transaction: o-5 exists={exists['o-5']}, last event={events.names()[-1]}")
    return exists


if __name__ == "__main__":
    asyncio.run(main())
