"""MongoDB: an order document and a chain in the same transaction, wake-ups over a change stream.

    QUEUERT_MONGODB_URL="mongodb://127.0.0.1:27017/?replicaSet=rs0" uv run python -m examples.mongodb_transactional_enqueue

``MongoStateAdapter`` stores jobs in your database; the transaction object queuert takes is your
``AsyncClientSession``. ``MongoNotifyAdapter`` on the same ``AsyncMongoClient`` writes each
transaction's notifications inside it, and wakes the worker through a change stream once it
commits. So:

- a declined payment aborts the transaction: neither the order nor the chain ever existed;
- a paid order commits both; the worker, woken by the change stream, ships it and updates the order
  in the transaction that completes the job, and ``wait_for_chain`` hears the chain close.

The collections get a prefix of their own and are dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient
from queuert import Attempt, Client, EntryJobType, TxContext, Worker
from queuert_mongodb import MongoNotifyAdapter, MongoStateAdapter

URL = os.environ.get("QUEUERT_MONGODB_URL", "mongodb://127.0.0.1:27017/?replicaSet=rs0")
DATABASE = "queuert_examples"


@dataclass
class Order:
    order_id: str


@dataclass
class Shipment:
    tracking: str


class ShipOrder(EntryJobType[Order, Shipment], name="mongodb_ship_order"):
    pass


class PaymentDeclined(Exception):
    pass


async def main(url: str = URL) -> dict[str, Any]:
    prefix = f"ex{uuid.uuid4().hex[:8]}_"
    client: AsyncMongoClient[Any] = AsyncMongoClient(url)
    orders = client[DATABASE][f"{prefix}orders"]
    state = MongoStateAdapter(client, database=DATABASE, collection_prefix=prefix)
    notify = MongoNotifyAdapter(client, database=DATABASE, collection_prefix=prefix)
    results: dict[str, Any] = {}
    try:
        await state.migrate()
        await notify.migrate()  # so that notifications ride in the transactions from the start
        await orders.insert_one({"_id": "created"})  # collections exist before the transactions

        async with Client(state, job_types=[ShipOrder], notify=notify) as queue:
            # 1. the payment is declined: the transaction aborts, nothing of it exists
            try:
                async with queue.transaction() as session:
                    await orders.insert_one({"_id": "o-1", "status": "new"}, session=session)
                    await queue.start_chain(ShipOrder(Order("o-1")), tx=session)
                    raise PaymentDeclined("card declined")
            except PaymentDeclined:
                pass
            results["declined_order"] = await orders.count_documents({"_id": "o-1"}) == 1
            results["declined_chains"] = len((await queue.list_chains()).items)

            # 2. the order is paid: the order and its chain commit together
            async with queue.transaction() as session:
                await orders.insert_one({"_id": "o-2", "status": "paid"}, session=session)
                chain = await queue.start_chain(ShipOrder(Order("o-2")), tx=session)

            # no poll for a minute: the change stream wakes the worker and the waiter
            worker = Worker(queue, name="shipping", poll_interval=60)

            @worker.handler(ShipOrder)
            async def ship(attempt: Attempt[ShipOrder]) -> None:
                order_id = attempt.input.order_id

                async def write(ctx: TxContext[Any]) -> Shipment:
                    # ctx.tx: the session of the transaction that completes the job
                    await orders.update_one(
                        {"_id": order_id}, {"$set": {"status": "shipped"}}, session=ctx.tx
                    )
                    return Shipment(f"TRK-{order_id}")

                await attempt.complete(write)

            async with worker:
                results["shipment"] = await queue.wait_for_chain(
                    chain, timeout=30, poll_interval=60
                )
            order = await orders.find_one({"_id": "o-2"})
            results["status"] = order["status"] if order else None
    finally:
        await notify.close()
        for name in await client[DATABASE].list_collection_names():
            if name.startswith(prefix):
                await client[DATABASE].drop_collection(name)
        await client.close()
    print(results)
    return results


if __name__ == "__main__":
    asyncio.run(main())
