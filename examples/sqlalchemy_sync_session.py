"""SQLAlchemy ORM (sync ``Session``) on SQLite: an ORM object and a chain in one session transaction.

    uv run python -m examples.sqlalchemy_sync_session

A synchronous application with SQLAlchemy sessions starts chains with
``SyncClient(SqlAlchemySyncBackend())`` and ``tx=session``. queuert's statements run on the session's
``sqlite3`` connection, inside its transaction, and the client follows the session's commit and
rollback events (no ``sync_client.hooks()`` block):

- an exception leaving ``session.begin()``: neither the order nor its chain ever existed;
- ``session.begin_nested()`` rolled back: only what ran inside it is gone;
- a commit: both exist, and an asyncio worker (here started afterwards, in the same process)
  ships the order.

With PostgreSQL it is ``queuert_postgres.SqlAlchemySyncBackend`` on a ``postgresql+psycopg://``
engine, and the wake-up is a ``NOTIFY`` sent in the session's transaction. The SQLite file lives in
a temporary directory.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from queuert import Attempt, Client, EntryJobType, SyncClient, Worker
from queuert_sqlite import SqlAlchemySyncBackend, SqliteStateAdapter
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


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


async def migrate(path: Path) -> None:
    async with SqliteStateAdapter.open(path) as state:
        await state.migrate()


async def ship_committed_order(path: Path, chain_id: str) -> Shipment:
    """The asyncio side: a worker on the same file processes what the session committed."""
    async with SqliteStateAdapter.open(path) as state, Client(state) as client:
        worker = Worker(client)

        @worker.handler(ShipOrder)
        async def ship(attempt: Attempt[ShipOrder]) -> Shipment:
            return Shipment(f"TRK-{attempt.input.order_id}")

        async with worker:
            return await client.wait_for_chain(chain_id, ShipOrder, timeout=10)


def main() -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "shop.db"
        asyncio.run(migrate(path))
        engine = create_engine(f"sqlite:///{path}")
        Base.metadata.create_all(engine)
        sync = SyncClient(SqlAlchemySyncBackend(), job_types=[ShipOrder])  # one per process

        # A failed request: the session rolls back the order and the chain together.
        try:
            with Session(engine) as session, session.begin():
                session.add(OrderRow(id="o-1", status="new"))
                declined = sync.start_chain(ShipOrder(Order("o-1")), tx=session)
                raise ValueError("card declined")
        except ValueError:
            pass

        # A good one, with a savepoint that rolls back a second chain only.
        with Session(engine) as session, session.begin():
            session.add(OrderRow(id="o-2", status="new"))
            chain = sync.start_chain(ShipOrder(Order("o-2")), tx=session)
            nested = session.begin_nested()
            extra = sync.start_chain(ShipOrder(Order("o-2-extra")), tx=session)
            nested.rollback()

        with Session(engine) as session:
            results["declined_chain"] = sync.get_chain(declined.id, tx=session)
            results["extra_chain"] = sync.get_chain(extra.id, tx=session)
            results["orders"] = session.scalars(select(OrderRow.id)).all()
        engine.dispose()
        results["shipment"] = asyncio.run(ship_committed_order(path, chain.id))
    return results


if __name__ == "__main__":
    print(main())
