"""SQLAlchemy ORM (async) on SQLite: an ORM object and a chain written in the same ``AsyncSession``.

    uv run python -m examples.sqlalchemy_orm_sqlite

The SQLite adapter accepts an ``AsyncSession`` (or ``AsyncConnection``) of a
``sqlite+aiosqlite://`` engine on the same database file as ``tx``: queuert's statements run on the
session's connection, inside its transaction, and the client follows the session's commit and
rollback events (no ``client.hooks()`` block). So:

- an exception leaving ``session.begin()``: neither the order nor its chain ever existed, and no
  wake-up was sent;
- a commit: both exist, the worker of this process is woken after the commit, ships the order and
  marks it shipped in the transaction that completes the job.

The SQLite file lives in a temporary directory.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from queuert import Attempt, Client, EntryJobType, TxContext, Worker
from queuert_sqlite import SqliteConnection, SqliteStateAdapter
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class OrderRow(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))


@dataclass
class Order:
    order_id: str


@dataclass
class Shipment:
    tracking: str


class ShipOrder(EntryJobType[Order, Shipment]):
    pass


async def main() -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "shop.db"
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with SqliteStateAdapter.open(path) as state:
            await state.migrate()
            # Client[Any]: its tx is queuert's SqliteConnection or your AsyncSession
            client: Client[Any] = Client(state, job_types=[ShipOrder])
            worker = Worker(client)

            @worker.handler(ShipOrder)
            async def ship(attempt: Attempt[ShipOrder]) -> None:
                order_id = attempt.input.order_id

                async def mark_shipped(ctx: TxContext[SqliteConnection]) -> Shipment:
                    await ctx.tx.execute(
                        "UPDATE orders SET status = 'shipped' WHERE id = ?", (order_id,)
                    )
                    return Shipment(f"TRK-{order_id}")

                await attempt.complete(mark_shipped)

            async with client, worker:
                # A failed request: the session rolls back the order and the chain together.
                try:
                    async with AsyncSession(engine) as session, session.begin():
                        session.add(OrderRow(id="o-1", status="new"))
                        await client.start_chain(ShipOrder(Order("o-1")), tx=session)
                        raise ValueError("card declined")
                except ValueError:
                    pass
                declined = await client.list_chains(type_names=[ShipOrder])
                results["declined_chains"] = len(declined.items)

                # A good one: both commit; the worker is woken after the commit.
                async with AsyncSession(engine) as session, session.begin():
                    session.add(OrderRow(id="o-2", status="new"))
                    chain = await client.start_chain(ShipOrder(Order("o-2")), tx=session)
                results["shipment"] = await client.wait_for_chain(chain, timeout=10)

            async with AsyncSession(engine) as session:
                rows = await session.execute(select(OrderRow.id, OrderRow.status))
                results["rows"] = [tuple(row) for row in rows]
        await engine.dispose()
    return results


if __name__ == "__main__":
    print(asyncio.run(main()))
