"""With an AsyncSession as tx, side effects follow the session's outermost commit: releasing or
rolling back a begin_nested() savepoint neither flushes nor drops the chains started before it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pg_helpers import DSN, Namespace, drop_namespace, unique_schema
from queuert import Client, EntryJobType, RecordingObservability
from queuert.observability import ChainCreated
from queuert_postgres import PgStateAdapter, SqlAlchemyProvider
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine


@dataclass
class Order:
    order_id: str


class ShipOrder(EntryJobType[Order, str]):
    pass


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(DSN.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def recorded() -> RecordingObservability:
    return RecordingObservability()


@pytest.fixture
async def client(
    engine: AsyncEngine, recorded: RecordingObservability
) -> AsyncIterator[Client[Any]]:
    ns = Namespace(unique_schema(), "queuert_")
    try:
        async with (
            PgStateAdapter(SqlAlchemyProvider(engine), schema=ns.schema) as state,
            Client(state, job_types=[ShipOrder], observability=recorded) as client,
        ):
            await state.migrate()
            yield client
    finally:
        await drop_namespace(ns)


def created(recorded: RecordingObservability) -> list[str]:
    return [event.chain_id for event in recorded.of(ChainCreated)]


async def test_a_released_savepoint_does_not_announce_before_the_commit(
    engine: AsyncEngine, client: Client[Any], recorded: RecordingObservability
) -> None:
    async with AsyncSession(engine) as session, session.begin():
        chain = await client.start_chain(ShipOrder(Order("o-1")), tx=session)
        async with session.begin_nested():
            pass
        await client.wait_published()
        assert created(recorded) == [], "announced at the savepoint's release"
    await client.wait_published()
    assert created(recorded) == [chain.id]


async def test_a_rolled_back_savepoint_keeps_what_ran_before_it_and_drops_its_own(
    engine: AsyncEngine, client: Client[Any], recorded: RecordingObservability
) -> None:
    async with AsyncSession(engine) as session, session.begin():
        kept = await client.start_chain(ShipOrder(Order("kept")), tx=session)
        nested = await session.begin_nested()
        dropped = await client.start_chain(ShipOrder(Order("dropped")), tx=session)
        await nested.rollback()
    await client.wait_published()
    assert await client.get_chain(dropped.id) is None
    assert created(recorded) == [kept.id]
