"""SQLAlchemy ORM (async) on MySQL / MariaDB: an ORM object and a chain in the same ``AsyncSession``.

    QUEUERT_MYSQL_URL=mysql://user@host/db uv run python -m examples.sqlalchemy_orm_mysql

``MysqlStateAdapter(SqlAlchemyProvider(engine))`` runs queuert's SQL on the driver connection under
your session (``mysql+aiomysql://`` or ``mysql+asyncmy://``), inside the session's transaction, and
follows the session's commit and rollback events: no ``client.hooks()`` block is needed. The engine
runs at ``READ COMMITTED``, which the adapter relies on inside your sessions. So:

- a declined payment leaves ``session.begin()`` with an exception: neither the row nor the chain
  ever existed;
- a paid order commits both; the worker ships it and updates the row in the transaction that
  completes the job.

The tables get a prefix of their own (``table_prefix`` for queuert's, a unique table name for the
orders) and are dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from dataclasses import dataclass
from typing import Any

from queuert import Attempt, Client, EntryJobType, TxContext, Worker
from queuert_mysql import MysqlStateAdapter, SqlAlchemyProvider
from sqlalchemy import MetaData, String, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MYSQL_URL = os.environ.get("QUEUERT_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
URL = MYSQL_URL.replace("mysql://", "mysql+aiomysql://", 1)
SUFFIX = uuid.uuid4().hex[:8]


class Base(DeclarativeBase):
    metadata = MetaData()


class OrderRow(Base):
    __tablename__ = f"example_orders_{SUFFIX}"

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


class PaymentDeclined(Exception):
    pass


def build_worker(client: Client[Any]) -> Worker[Any]:
    worker: Worker[Any] = Worker(client, name="shipping")

    @worker.handler(ShipOrder)
    async def ship(attempt: Attempt[ShipOrder]) -> None:
        order_id = attempt.input.order_id

        async def write(ctx: TxContext[Any]) -> Shipment:
            # ctx.tx: the AsyncConnection of the transaction that completes the job
            await ctx.tx.execute(
                text(f"UPDATE {OrderRow.__tablename__} SET status = 'shipped' WHERE id = :id"),
                {"id": order_id},
            )
            return Shipment(f"TRK-{order_id}")

        await attempt.complete(write)

    return worker


async def place_order(
    client: Client[Any], sessions: async_sessionmaker[AsyncSession], order_id: str, *, pay: bool
) -> str:
    """One unit of work: the ORM row and the chain commit together or not at all."""
    async with sessions() as session, session.begin():
        session.add(OrderRow(id=order_id, status="placed"))
        await session.flush()
        chain = await client.start_chain(ShipOrder(Order(order_id)), tx=session)
        if not pay:
            raise PaymentDeclined(order_id)
    return chain.id


async def main(url: str = URL) -> dict[str, Any]:
    engine = create_async_engine(url, isolation_level="READ COMMITTED")
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    prefix = f"ex_{SUFFIX}_"
    results: dict[str, Any] = {}
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with (
            MysqlStateAdapter(SqlAlchemyProvider(engine), table_prefix=prefix) as state,
            Client(state, job_types=[ShipOrder]) as client,
        ):
            await state.migrate()

            with contextlib.suppress(PaymentDeclined):
                await place_order(client, sessions, "o-1", pay=False)
            async with sessions() as session:
                results["declined_row"] = await session.get(OrderRow, "o-1") is not None
            results["declined_chains"] = len((await client.list_chains()).items)

            chain_id = await place_order(client, sessions, "o-2", pay=True)
            async with build_worker(client):
                results["shipment"] = await client.wait_for_chain(chain_id, ShipOrder, timeout=10)
            async with sessions() as session:
                row = await session.get(OrderRow, "o-2")
                results["status"] = row.status if row is not None else None
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            tables = await conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_name LIKE :p"),
                {"p": f"{prefix}%"},
            )
            for (name,) in tables.all():
                await conn.execute(text(f"DROP TABLE IF EXISTS `{name}`"))
        await engine.dispose()
    return results


if __name__ == "__main__":
    print(asyncio.run(main()))
