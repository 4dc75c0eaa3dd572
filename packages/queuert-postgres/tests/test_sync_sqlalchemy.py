"""SyncClient on SQLAlchemy's sync Session over PostgreSQL (psycopg 3): the chain commits or rolls
back with the session, its NOTIFY with it, and its events follow the session's commit events; the
other calls (workerless completion, cancellation, deletion, reads) run in the session too."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from pg_helpers import DSN, Namespace, drop_namespace, unique_schema
from queuert import (
    EntryJobType,
    RecordingObservability,
    SyncClient,
    SyncWorkerlessCompletion,
    UsageError,
)
from queuert.observability import ChainCreated
from queuert_postgres import PgStateAdapter, SqlAlchemySyncBackend
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

WAIT = 20.0


@dataclass
class Order:
    order_id: str


class ShipOrder(EntryJobType[Order, str]):
    pass


class Barrier(EntryJobType[Order, str]):
    pass


@pytest.fixture
async def namespace() -> AsyncIterator[Namespace]:
    ns = Namespace(unique_schema(), "queuert_")
    async with PgStateAdapter.connect(DSN, schema=ns.schema) as state:
        await state.migrate()
    yield ns
    await drop_namespace(ns)


@pytest.fixture
def channel_prefix() -> str:
    return f"qa{uuid.uuid4().hex[:12]}"


@pytest.fixture
def engine(namespace: Namespace) -> Iterator[Engine]:
    engine = create_engine(DSN.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text(f'CREATE TABLE "{namespace.schema}".orders (id text PRIMARY KEY)'))
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def recorded() -> RecordingObservability:
    return RecordingObservability()


@pytest.fixture
def sync(
    namespace: Namespace, channel_prefix: str, recorded: RecordingObservability
) -> SyncClient[Any]:
    backend = SqlAlchemySyncBackend(schema=namespace.schema, channel_prefix=channel_prefix)
    return SyncClient(backend, job_types=[ShipOrder, Barrier], observability=recorded)


@pytest.fixture
def listener(channel_prefix: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(DSN, autocommit=True) as connection:
        connection.execute(f"LISTEN {channel_prefix}_sched")
        yield connection


def created(recorded: RecordingObservability) -> list[str]:
    return [event.chain_id for event in recorded.of(ChainCreated)]


def test_commit_and_rollback_of_a_session_carry_the_chain_its_notify_and_its_events(
    engine: Engine,
    sync: SyncClient[Any],
    recorded: RecordingObservability,
    listener: psycopg.Connection[Any],
    namespace: Namespace,
) -> None:
    insert = text(f'INSERT INTO "{namespace.schema}".orders (id) VALUES (:id)')
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        session.execute(insert, {"id": "o-1"})
        doomed = sync.start_chain(ShipOrder(Order("o-1")), tx=session)
        raise RuntimeError("the request failed")
    with Session(engine) as session, session.begin():
        session.execute(insert, {"id": "o-2"})
        kept = sync.start_chain(Barrier(Order("o-2")), tx=session)
        assert created(recorded) == []
    assert created(recorded) == [kept.id]
    notified = [n.payload for n in listener.notifies(timeout=WAIT, stop_after=1)]
    assert notified == ["barrier"], "the rolled-back session's NOTIFY was never delivered"
    with Session(engine) as session:
        assert sync.get_chain(doomed.id, tx=session) is None
        assert sync.get_chain(kept.id, Barrier, tx=session) is not None
        ids = session.execute(text(f'SELECT id FROM "{namespace.schema}".orders')).scalars()
        assert list(ids) == ["o-2"]


def test_a_rolled_back_begin_nested_drops_its_chain_and_its_events(
    engine: Engine, sync: SyncClient[Any], recorded: RecordingObservability
) -> None:
    with Session(engine) as session, session.begin():
        nested = session.begin_nested()
        dropped = sync.start_chain(ShipOrder(Order("dropped")), tx=session)
        nested.rollback()
        kept = sync.start_chain(ShipOrder(Order("kept")), tx=session)
    assert created(recorded) == [kept.id]
    with Session(engine) as session:
        assert sync.get_chain(dropped.id, tx=session) is None


def test_workerless_completion_cancel_delete_and_reads_in_a_session(
    engine: Engine, sync: SyncClient[Any], recorded: RecordingObservability
) -> None:
    with Session(engine) as session, session.begin():
        first = sync.start_chain(ShipOrder(Order("o-1")), tx=session)
        second = sync.start_chain(ShipOrder(Order("o-2")), tx=session)

    def ship_by_hand(completion: SyncWorkerlessCompletion[Any, Order]) -> str:
        # a chain started by the callback joins the session's transaction
        completion.start_chain(Barrier(Order(f"after {completion.input.order_id}")))
        return f"by hand {completion.input.order_id}"

    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        sync.complete_chain(first, ShipOrder, ship_by_hand, tx=session)
        raise RuntimeError("the request failed")
    with Session(engine) as session:
        found = sync.get_chain(first.id, ShipOrder, tx=session)
        assert found is not None and found.status == "open"  # the completion rolled back
        assert sync.list_chains(type_names=[Barrier], tx=session).items == []
    with Session(engine) as session, session.begin():
        done = sync.complete_chain(first, ShipOrder, ship_by_hand, tx=session)
        cancelled = sync.cancel_chain(second, tx=session)
    assert (done.output, cancelled.outcome) == ("by hand o-1", "cancelled")
    with Session(engine) as session, session.begin():
        (barrier,) = sync.list_chains(type_names=[Barrier], tx=session).items
        assert barrier.input == Order("after o-1")
        deleted = sync.delete_chains([first, second], tx=session)
        assert {c.id for c in deleted} == {first.id, second.id}
    with Session(engine) as session:
        assert [c.id for c in sync.list_chains(tx=session).items] == [barrier.id]
    assert set(created(recorded)) == {first.id, second.id, barrier.id}


def test_an_engine_of_another_driver_is_refused(namespace: Namespace) -> None:
    sync = SyncClient(SqlAlchemySyncBackend(schema=namespace.schema), job_types=[ShipOrder])
    engine = create_engine("sqlite://")
    try:
        with Session(engine) as session, pytest.raises(UsageError, match="psycopg 3"):
            sync.list_chains(tx=session)
    finally:
        engine.dispose()
