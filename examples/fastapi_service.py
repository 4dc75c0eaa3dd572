"""A FastAPI service: an order row and its receipt job committed together, results awaited over HTTP.

    uv run python -m examples.fastapi_service
    # then: curl -X POST localhost:8000/orders -H 'content-type: application/json' \\
    #            -d '{"order_id": "o-1", "amount_cents": 1250}'
    #       curl 'localhost:8000/orders/o-1/receipt?timeout=5'

- the **lifespan** opens the state adapter (SQLite here, so it runs anywhere; PostgreSQL works the
  same), migrates, creates the application's own ``orders`` table, and owns the client and a worker:
  both are closed, the worker gracefully, when the application shuts down;
- the **dependency** ``transaction`` yields ``client.transaction()``: the endpoint's own SQL and
  its ``start_chain`` share one transaction, committed when the endpoint returns and rolled back when
  it raises (``scope="function"``: the commit happens before the response is sent, so a client that
  got a 201 finds both the row and the chain);
- ``POST /orders`` writes the order and starts its chain atomically: an order over the credit limit
  is refused *after* both writes, and the rollback leaves neither;
- ``GET /orders/{order_id}/receipt?timeout=`` awaits the chain's result, 504 when it is not there in
  time.

Run the worker in its own process instead (``queuert worker`` or ``Worker(...).run()``) by passing
``run_worker=False``: the web process then only starts chains and reads results.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel
from queuert import (
    Attempt,
    ChainNotFoundError,
    Client,
    EntryJobType,
    WaitChainTimeoutError,
    Worker,
)
from queuert_sqlite import SqliteConnection, SqliteStateAdapter

CREDIT_LIMIT_CENTS = 100_000


@dataclass
class Order:
    order_id: str
    amount_cents: int


@dataclass
class Receipt:
    order_id: str
    text: str


class SendReceipt(EntryJobType[Order, Receipt]):
    pass


class NewOrder(BaseModel):
    order_id: str
    amount_cents: int


def build_worker(client: Client[SqliteConnection]) -> Worker[SqliteConnection]:
    worker = Worker(client, name="receipts", concurrency=4)

    @worker.handler(SendReceipt)
    async def send_receipt(attempt: Attempt[SendReceipt]) -> Receipt:
        order = attempt.input
        return Receipt(order.order_id, f"paid {order.amount_cents / 100:.2f} EUR")

    return worker


def get_client(request: Request) -> Client[SqliteConnection]:
    client: Client[SqliteConnection] = request.app.state.client
    return client


ClientDep = Annotated[Client[SqliteConnection], Depends(get_client)]


async def transaction(client: ClientDep) -> AsyncIterator[SqliteConnection]:
    # Commits when the endpoint returns, rolls back when it raises (HTTPException included);
    # the chain's wake-up is published after the commit and dropped on rollback.
    async with client.transaction() as tx:
        yield tx


Tx = Annotated[SqliteConnection, Depends(transaction, scope="function")]


def create_app(database: str | Path, *, run_worker: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            SqliteStateAdapter.open(database) as state,
            Client(state, job_types=[SendReceipt]) as client,
        ):
            await state.migrate()
            async with client.transaction() as tx:
                await tx.execute(
                    "CREATE TABLE IF NOT EXISTS orders"
                    " (id TEXT PRIMARY KEY, amount_cents INTEGER NOT NULL, chain_id TEXT NOT NULL)"
                )
            app.state.client = client
            if run_worker:
                async with build_worker(client):  # closed (gracefully) before the client
                    yield
            else:
                yield

    app = FastAPI(title="orders", lifespan=lifespan)

    @app.post("/orders", status_code=201)
    async def create_order(order: NewOrder, client: ClientDep, tx: Tx) -> dict[str, str]:
        # The transaction holds SQLite's write lock, so nobody inserts the same id in between.
        if await tx.execute("SELECT 1 FROM orders WHERE id = ?", (order.order_id,)):
            raise HTTPException(409, f"order {order.order_id} exists")
        chain = await client.start_chain(
            SendReceipt(Order(order.order_id, order.amount_cents)), tx=tx
        )
        await tx.execute(
            "INSERT INTO orders (id, amount_cents, chain_id) VALUES (?, ?, ?)",
            (order.order_id, order.amount_cents, chain.id),
        )
        if order.amount_cents > CREDIT_LIMIT_CENTS:
            # Refused after both writes: the dependency rolls them back together.
            raise HTTPException(402, "over the credit limit")
        return {"order_id": order.order_id, "chain_id": chain.id}

    @app.get("/orders/{order_id}")
    async def get_order(order_id: str, client: ClientDep) -> dict[str, Any]:
        return await _order_row(client, order_id)

    @app.get("/orders/{order_id}/receipt")
    async def get_receipt(order_id: str, client: ClientDep, timeout: float = 10.0) -> Receipt:
        row = await _order_row(client, order_id)
        try:
            return await client.wait_for_chain(row["chain_id"], SendReceipt, timeout=timeout)
        except WaitChainTimeoutError as exc:
            raise HTTPException(504, f"no receipt for {order_id} within {timeout}s") from exc
        except ChainNotFoundError as exc:  # deleted since (e.g. by a retention job)
            raise HTTPException(404, f"order {order_id} has no receipt chain") from exc

    return app


async def _order_row(client: Client[SqliteConnection], order_id: str) -> dict[str, Any]:
    # A short read transaction of its own (the same writer connection on SQLite).
    async with client.transaction() as tx:
        rows = await tx.execute(
            "SELECT id, amount_cents, chain_id FROM orders WHERE id = ?", (order_id,)
        )
    if not rows:
        raise HTTPException(404, f"no order {order_id}")
    order_id, amount_cents, chain_id = rows[0]
    return {"order_id": order_id, "amount_cents": amount_cents, "chain_id": chain_id}


async def main() -> None:
    import uvicorn

    app = create_app("orders.db")
    print("serving on http://127.0.0.1:8000 (docs at /docs); Ctrl-C stops")
    await uvicorn.Server(uvicorn.Config(app, port=8000)).serve()


if __name__ == "__main__":
    asyncio.run(main())
