"""SQLAlchemy ORM (async) on PostgreSQL: an ORM object and a chain written in the same ``AsyncSession``.

    QUEUERT_PG_DSN=postgresql://user@host/db uv run python -m examples.sqlalchemy_orm

(run through SQLAlchemy's asyncpg dialect; ``postgresql+psycopg://`` works too.) ``PgStateAdapter(SqlAlchemyProvider(engine))`` runs queuert's
SQL on the driver connection under your session, inside the session's transaction, and attaches
the client's transaction hooks to the session's commit and rollback events: no ``client.hooks()``
scope is needed. So:

- ``session.add(order)`` then ``client.start_chain(..., tx=session)`` and a rollback: neither the
  row nor the chain ever existed, and no wake-up was sent;
- the same with a commit: both exist, the worker is woken after the commit and runs the job; its
  handler writes the ORM table again, in the transaction that completes the job.

The tables live in ``schema`` (the example's own, dropped at the end): the ORM model has no schema and
the engine's ``schema_translate_map`` puts it there; queuert is given the schema explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from typing import Any

from queuert import Attempt, Client, EntryJobType, TxContext, Worker
from queuert_postgres import PgStateAdapter, SqlAlchemyProvider
from sqlalchemy import String, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

PG_DSN = os.environ.get("QUEUERT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
DSN = PG_DSN.replace("postgresql://", "postgresql+asyncpg://", 1)


class Base(DeclarativeBase):
    pass


class OrderRow(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    tracking: Mapped[str | None] = mapped_column(String(40), default=None)


@dataclass
class Order:
    order_id: str


@dataclass
class Shipment:
    tracking: str


class ShipOrder(EntryJobType[Order, Shipment]):
    pass


class PaymentDeclined(Exception):
    pass


def build_worker(client: Client[Any]) -> Worker[Any]:
    worker: Worker[Any] = Worker(client, name="shipping")

    @worker.handler(ShipOrder)
    async def ship(attempt: Attempt[ShipOrder]) -> None:
        shipment = Shipment(tracking=f"TRK-{attempt.input.order_id}")

        async def write(ctx: TxContext[Any]) -> Shipment:
            # ctx.tx: the AsyncConnection of the transaction that completes the job
            await ctx.tx.execute(
                update(OrderRow)
                .where(OrderRow.id == attempt.input.order_id)
                .values(status="shipped", tracking=shipment.tracking)
            )
            return shipment

        await attempt.complete(write)

    return worker


async def place_order(
    client: Client[Any], sessions: async_sessionmaker[AsyncSession], order_id: str, *, pay: bool
) -> str:
    """One unit of work: the ORM row and the chain commit together or not at all."""
    async with sessions() as session, session.begin():
        session.add(OrderRow(id=order_id, status="placed"))
        await session.flush()  # the INSERT runs now, in the session's transaction
        chain = await client.start_chain(ShipOrder(Order(order_id)), tx=session)
        if not pay:
            raise PaymentDeclined(order_id)  # leaving session.begin() with it rolls back both
    return chain.id


async def main(dsn: str = DSN, schema: str = "queuert_orm_example") -> dict[str, Any]:
    base_engine = create_async_engine(dsn)
    engine = base_engine.execution_options(schema_translate_map={None: schema})
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    results: dict[str, Any] = {}
    try:
        async with base_engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with (
            PgStateAdapter(SqlAlchemyProvider(engine), schema=schema) as state,
            Client(state, job_types=[ShipOrder]) as client,
        ):
            await state.migrate()

            # 1. Declined after the writes: the session rolls back the row and the chain.
            with contextlib.suppress(PaymentDeclined):
                await place_order(client, sessions, "o-1", pay=False)
            async with sessions() as session:
                results["declined_row"] = await session.get(OrderRow, "o-1") is not None
            chains = await client.list_chains(type_names=[ShipOrder])
            results["declined_chains"] = len(chains.items)
            print(f"o-1 declined: row exists={results['declined_row']}, chains={len(chains.items)}")

            # 2. Paid: both commit; the worker ships the order and updates the row.
            chain_id = await place_order(client, sessions, "o-2", pay=True)
            async with build_worker(client):
                results["shipment"] = await client.wait_for_chain(chain_id, ShipOrder, timeout=10)
            async with sessions() as session:
                row = (
                    await session.execute(select(OrderRow).where(OrderRow.id == "o-2"))
                ).scalar_one()
                results["row"] = (row.status, row.tracking)
            print(f"o-2 paid: {results['shipment']}, row {results['row']}")
    finally:
        async with base_engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await base_engine.dispose()
    return results


if __name__ == "__main__":
    asyncio.run(main())
