"""SyncClient on SQLAlchemy's sync Session and Connection over SQLite: the chain lives and dies
with the session's transaction, and its side effects (wake-ups, events) follow the session's commit
events."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from queuert import (
    EntryJobType,
    RecordingObservability,
    SyncClient,
    TransactionHooksRequiredError,
    UsageError,
)
from queuert.observability import ChainCreated
from queuert_conformance.notify_loop import NotifyLoopThread
from queuert_sqlite import SqlAlchemySyncBackend, SqliteStateAdapter
from sqlalchemy import Engine, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


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
def engine(db_path: Path, table_prefix: str) -> Iterator[Engine]:
    async def migrate() -> None:
        async with SqliteStateAdapter.open(db_path, table_prefix=table_prefix) as state:
            await state.migrate()

    asyncio.run(migrate())
    engine = create_engine(f"sqlite:///{db_path}")
    Base.metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def recorded() -> RecordingObservability:
    return RecordingObservability()


@pytest.fixture
def sync(table_prefix: str, recorded: RecordingObservability) -> SyncClient[object]:
    return SyncClient(
        SqlAlchemySyncBackend(table_prefix=table_prefix),
        job_types=[ShipOrder],
        observability=recorded,
    )


def created(recorded: RecordingObservability) -> list[str]:
    return [event.chain_id for event in recorded.of(ChainCreated)]


def test_a_session_commit_keeps_the_row_and_the_chain_and_then_emits_events(
    engine: Engine, sync: SyncClient[object], recorded: RecordingObservability
) -> None:
    with Session(engine) as session, session.begin():
        session.add(OrderRow(id="o-1"))
        chain = sync.start_chain(ShipOrder(Order("o-1")), tx=session)
        assert created(recorded) == [], "nothing is announced before the commit"
    assert created(recorded) == [chain.id]
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(OrderRow)) == 1
        found = sync.get_chain(chain.id, ShipOrder, tx=session)
        assert found is not None
        assert found.root.input == Order("o-1")


def test_a_session_rollback_drops_the_row_the_chain_and_its_events(
    engine: Engine, sync: SyncClient[object], recorded: RecordingObservability
) -> None:
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        session.add(OrderRow(id="o-1"))
        doomed = sync.start_chain(ShipOrder(Order("o-1")), tx=session)
        raise RuntimeError("the request failed")
    with Session(engine) as session:
        session.rollback()
        assert sync.get_chain(doomed.id, tx=session) is None
        assert session.scalar(select(func.count()).select_from(OrderRow)) == 0
    assert created(recorded) == []


def test_a_rolled_back_begin_nested_drops_only_its_own_chain(
    engine: Engine, sync: SyncClient[object], recorded: RecordingObservability
) -> None:
    with Session(engine) as session, session.begin():
        kept = sync.start_chain(ShipOrder(Order("kept")), tx=session)
        nested = session.begin_nested()
        dropped = sync.start_chain(ShipOrder(Order("dropped")), tx=session)
        nested.rollback()
        with session.begin_nested():
            released = sync.start_chain(ShipOrder(Order("released")), tx=session)
        assert created(recorded) == []
    assert created(recorded) == [kept.id, released.id]
    with Session(engine) as session:
        assert sync.get_chain(dropped.id, tx=session) is None
        assert sync.get_chain(released.id, tx=session) is not None


def test_wake_ups_are_handed_over_after_the_session_s_commit_only(
    engine: Engine, table_prefix: str
) -> None:
    with NotifyLoopThread(["ship_order"]) as wake:
        sync = SyncClient(
            SqlAlchemySyncBackend(table_prefix=table_prefix),
            job_types=[ShipOrder],
            notify=wake.notify,
            notify_loop=wake.loop,
        )
        with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
            sync.start_chain(ShipOrder(Order("o-1")), tx=session)
            raise RuntimeError("the request failed")
        with Session(engine) as session, session.begin():
            nested = session.begin_nested()
            dropped = sync.start_chain(ShipOrder(Order("o-2")), tx=session)
            nested.rollback()
            kept = sync.start_chain(ShipOrder(Order("o-3")), tx=session)
            sync.wait_published()
            assert wake.received() == []  # not before the commit
        sync.wait_published()
        assert wake.received() == ["ship_order"]  # one, for the chain that committed
        with Session(engine) as session:
            assert sync.get_chain(dropped.id, tx=session) is None
            assert sync.get_chain(kept.id, tx=session) is not None


def test_a_connection_needs_a_hooks_block(
    engine: Engine, sync: SyncClient[object], recorded: RecordingObservability
) -> None:
    with engine.connect() as conn:
        with pytest.raises(TransactionHooksRequiredError):
            sync.start_chain(ShipOrder(Order("o-1")), tx=conn)
        conn.rollback()
        with sync.hooks(conn):
            with conn.begin():
                chain = sync.start_chain(ShipOrder(Order("o-1")), tx=conn)
            assert created(recorded) == []
        assert created(recorded) == [chain.id]


def test_other_objects_are_refused(sync: SyncClient[object]) -> None:
    with pytest.raises(UsageError, match="not a SQLAlchemy Session or Connection"):
        sync.list_chains(tx=object())
