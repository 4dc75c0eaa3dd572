"""The SQLite adapter with SQLAlchemy's AsyncSession (sqlite+aiosqlite) as the transaction: the
chain is written on the session's connection, commits or rolls back with the ORM rows, and wakes
the worker only after the session's commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from queuert import Attempt, Client, EntryJobType, RecordingObservability, UsageError, Worker
from queuert.observability import ChainCreated
from queuert_sqlite import SqliteStateAdapter
from sqlalchemy import String, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

WAIT = 20.0


class Base(DeclarativeBase):
    pass


class OrderRow(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)


@dataclass
class Order:
    order_id: str


class ShipOrder(EntryJobType[Order, str]):
    pass


@pytest.fixture
async def engine(db_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{db_path}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def recorded() -> RecordingObservability:
    return RecordingObservability()


@pytest.fixture
async def client(
    adapter: SqliteStateAdapter, recorded: RecordingObservability
) -> AsyncIterator[Client[Any]]:
    async with Client(adapter, job_types=[ShipOrder], observability=recorded) as client:
        yield client


def created(recorded: RecordingObservability) -> list[str]:
    return [event.chain_id for event in recorded.of(ChainCreated)]


async def test_a_committed_session_keeps_row_and_chain_and_wakes_the_worker(
    engine: AsyncEngine, client: Client[Any], recorded: RecordingObservability
) -> None:
    shipped: asyncio.Queue[str] = asyncio.Queue()
    worker = Worker(client, poll_interval=60)  # within WAIT only the wake-up finds the job

    @worker.handler(ShipOrder)
    async def ship(attempt: Attempt[ShipOrder]) -> str:
        await shipped.put(attempt.input.order_id)
        return "shipped"

    async with worker:
        async with AsyncSession(engine) as session, session.begin():
            session.add(OrderRow(id="o-1"))
            chain = await client.start_chain(ShipOrder(Order("o-1")), tx=session)
            # visible in the session's transaction, not yet to the adapter's own readers
            assert await client.get_chain(chain.id, tx=session) is not None
            assert await client.get_chain(chain.id) is None
            assert created(recorded) == []
        assert await asyncio.wait_for(shipped.get(), WAIT) == "o-1"
    assert created(recorded) == [chain.id]
    async with AsyncSession(engine) as session:
        assert await session.scalar(select(func.count()).select_from(OrderRow)) == 1


async def test_a_rolled_back_session_drops_row_chain_and_events(
    engine: AsyncEngine, client: Client[Any], recorded: RecordingObservability
) -> None:
    with pytest.raises(RuntimeError):
        async with AsyncSession(engine) as session, session.begin():
            session.add(OrderRow(id="o-1"))
            doomed = await client.start_chain(ShipOrder(Order("o-1")), tx=session)
            raise RuntimeError("the request failed")
    assert await client.get_chain(doomed.id) is None
    async with AsyncSession(engine) as session:
        assert await session.scalar(select(func.count()).select_from(OrderRow)) == 0
    assert created(recorded) == []


async def test_a_client_savepoint_in_the_session_drops_only_its_chain(
    engine: AsyncEngine, client: Client[Any], recorded: RecordingObservability
) -> None:
    async with AsyncSession(engine) as session, session.begin():
        kept = await client.start_chain(ShipOrder(Order("kept")), tx=session)
        with pytest.raises(KeyError):
            async with client.savepoint(session):
                dropped = await client.start_chain(ShipOrder(Order("dropped")), tx=session)
                raise KeyError("inner")
    assert await client.get_chain(kept.id) is not None
    assert await client.get_chain(dropped.id) is None
    assert created(recorded) == [kept.id]


async def test_a_session_on_another_database_file_is_refused(
    tmp_path: Path, client: Client[Any]
) -> None:
    other = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    try:
        async with AsyncSession(other) as session:
            with pytest.raises(UsageError, match="not on the adapter's database"):
                await client.get_chain("01a24ad0-865b-70bb-b28d-f6f43345a96c", tx=session)
    finally:
        await other.dispose()
