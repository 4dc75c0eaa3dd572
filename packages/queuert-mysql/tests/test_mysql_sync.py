"""SyncClient on MySQL / MariaDB with PyMySQL and with SQLAlchemy's sync Session (mysql+pymysql):
the chain commits or rolls back with the caller's transaction, its wake-ups and events follow the
commit, the other calls (workerless completion, cancellation, deletion, reads) run on the caller's
connection, and an asyncio worker in another thread processes what committed."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pymysql
import pytest
from mysql_helpers import URL, connect_args, drop_prefix, make_adapter, unique_prefix
from queuert import (
    Attempt,
    Client,
    EntryJobType,
    RecordingObservability,
    SyncClient,
    TransactionHooksRequiredError,
    UsageError,
    Worker,
)
from queuert.observability import ChainCreated
from queuert_conformance.notify_loop import NotifyLoopThread
from queuert_mysql import PymysqlSyncBackend, SqlAlchemySyncBackend
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

WAIT = 20.0


@dataclass
class Order:
    order_id: str


class ShipOrder(EntryJobType[Order, str]):
    pass


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = unique_prefix()
    adapter = await make_adapter(name)
    try:
        await adapter.migrate()
    finally:
        await adapter.close()
    yield name
    await drop_prefix(name)


def pymysql_args() -> dict[str, Any]:
    args = dict(connect_args())
    args["database"] = args.pop("db", None)
    return {k: v for k, v in args.items() if k in {"host", "port", "user", "password", "database"}}


@pytest.fixture
def conn(prefix: str) -> Iterator[pymysql.connections.Connection[Any]]:
    connection = pymysql.connect(**pymysql_args())
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def recorded() -> RecordingObservability:
    return RecordingObservability()


@pytest.fixture
def sync(prefix: str, recorded: RecordingObservability) -> SyncClient[Any]:
    return SyncClient(
        PymysqlSyncBackend(table_prefix=prefix), job_types=[ShipOrder], observability=recorded
    )


def created(recorded: RecordingObservability) -> list[str]:
    return [event.chain_id for event in recorded.of(ChainCreated)]


def test_a_transaction_commits_or_rolls_back_the_chain_and_its_events(
    sync: SyncClient[Any], conn: Any, recorded: RecordingObservability
) -> None:
    with pytest.raises(RuntimeError), sync.transaction(conn):
        doomed = sync.start_chain(ShipOrder(Order("o-1")), tx=conn)
        raise RuntimeError("the request failed")
    with sync.transaction(conn):
        kept = sync.start_chain(ShipOrder(Order("o-2")), tx=conn)
        with pytest.raises(KeyError), sync.savepoint(conn):
            dropped = sync.start_chain(ShipOrder(Order("o-3")), tx=conn)
            raise KeyError("inner")
        assert created(recorded) == []
    assert created(recorded) == [kept.id]
    conn.begin()
    assert sync.get_chain(doomed.id, tx=conn) is None
    assert sync.get_chain(dropped.id, tx=conn) is None
    assert sync.get_chain(kept.id, ShipOrder, tx=conn) is not None
    conn.rollback()


def test_wake_ups_are_handed_over_after_the_commit_and_dropped_on_rollback(
    conn: Any, prefix: str
) -> None:
    with NotifyLoopThread(["ship_order"]) as wake:
        sync = SyncClient(
            PymysqlSyncBackend(table_prefix=prefix),
            job_types=[ShipOrder],
            notify=wake.notify,
            notify_loop=wake.loop,
        )
        with pytest.raises(RuntimeError), sync.transaction(conn):
            sync.start_chain(ShipOrder(Order("o-1")), tx=conn)
            raise RuntimeError("the request failed")
        with sync.transaction(conn), pytest.raises(KeyError), sync.savepoint(conn):
            sync.start_chain(ShipOrder(Order("o-2")), tx=conn)
            raise KeyError("inner")
        sync.wait_published()
        assert wake.received() == []  # neither the rolled-back transaction nor the savepoint
        with sync.transaction(conn):
            sync.start_chain(ShipOrder(Order("o-3")), tx=conn)
            sync.wait_published()
            assert wake.received() == []  # not before the commit
        sync.wait_published()
        assert wake.received() == ["ship_order"]


def test_a_session_s_wake_ups_follow_its_commit_and_are_dropped_on_rollback(
    engine: Engine, prefix: str
) -> None:
    with NotifyLoopThread(["ship_order"]) as wake:
        sync = SyncClient(
            SqlAlchemySyncBackend(table_prefix=prefix),
            job_types=[ShipOrder],
            notify=wake.notify,
            notify_loop=wake.loop,
        )
        with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
            sync.start_chain(ShipOrder(Order("o-1")), tx=session)
            raise RuntimeError("declined")
        with Session(engine) as session, session.begin():
            # the savepoint is the transaction's first statement: queuert's joins it
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


def test_workerless_completion_cancel_delete_and_reads_on_the_caller_s_connection(
    sync: SyncClient[Any], conn: Any
) -> None:
    with sync.transaction(conn):
        first = sync.start_chain(ShipOrder(Order("o-1")), tx=conn)
        second = sync.start_chain(ShipOrder(Order("o-2")), tx=conn)
    with sync.transaction(conn):
        done = sync.complete_chain(
            first, ShipOrder, lambda c: f"by hand {c.input.order_id}", tx=conn
        )
        cancelled = sync.cancel_chain(second, tx=conn)
    assert (done.output, cancelled.outcome) == ("by hand o-1", "cancelled")
    conn.begin()
    found = sync.get_chain(first.id, ShipOrder, tx=conn)
    assert found is not None and found.output == "by hand o-1"
    assert {c.id for c in sync.list_chains(type_names=[ShipOrder], tx=conn).items} == {
        first.id,
        second.id,
    }
    conn.rollback()
    with pytest.raises(RuntimeError), sync.transaction(conn):
        sync.delete_chains([first, second], tx=conn)
        raise RuntimeError("changed my mind")
    with sync.transaction(conn):
        assert len(sync.list_chains(tx=conn).items) == 2  # the rolled-back deletion left them
        assert {c.id for c in sync.delete_chains([first, second], tx=conn)} == {first.id, second.id}
    conn.begin()
    assert sync.list_chains(tx=conn).items == []
    conn.rollback()


def test_an_asyncio_worker_in_another_thread_processes_a_committed_chain(
    sync: SyncClient[Any], conn: Any, prefix: str
) -> None:
    processed: queue.Queue[str] = queue.Queue()
    ready = threading.Event()
    box: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def run_worker() -> None:
        adapter = await make_adapter(prefix)
        async with adapter, Client(adapter) as client:
            worker = Worker(client, poll_interval=0.2)  # no networked notify: it polls

            @worker.handler(ShipOrder)
            async def ship(attempt: Attempt[ShipOrder]) -> str:
                processed.put(attempt.input.order_id)
                return "shipped"

            stop = asyncio.Event()
            async with worker:
                box.append((asyncio.get_running_loop(), stop))
                ready.set()
                await stop.wait()

    thread = threading.Thread(target=lambda: asyncio.run(run_worker()), daemon=True)
    thread.start()
    try:
        assert ready.wait(WAIT)
        with sync.transaction(conn):
            sync.start_chain(ShipOrder(Order("o-9")), tx=conn)
        assert processed.get(timeout=WAIT) == "o-9"
    finally:
        if box:
            loop, stop = box[0]
            loop.call_soon_threadsafe(stop.set)
        thread.join(WAIT)
    assert not thread.is_alive()


def test_autocommit_without_a_transaction_and_missing_hooks_are_refused(
    sync: SyncClient[Any], conn: Any, prefix: str
) -> None:
    with pytest.raises(TransactionHooksRequiredError):
        sync.start_chain(ShipOrder(Order("o-1")), tx=conn)
    conn.rollback()
    conn.autocommit(True)
    with pytest.raises(UsageError, match="autocommit"), sync.hooks(conn):
        sync.start_chain(ShipOrder(Order("o-1")), tx=conn)
    assert sync.list_chains(tx=conn).items == []


@pytest.fixture
def engine(prefix: str) -> Iterator[Engine]:
    engine = create_engine(
        URL.replace("mysql://", "mysql+pymysql://", 1), isolation_level="READ COMMITTED"
    )
    with engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE {prefix}orders (id VARCHAR(40) PRIMARY KEY)"))
    try:
        yield engine
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {prefix}orders"))
        engine.dispose()


def test_a_sqlalchemy_session_carries_row_chain_and_events(
    engine: Engine, prefix: str, recorded: RecordingObservability
) -> None:
    sync = SyncClient(
        SqlAlchemySyncBackend(table_prefix=prefix), job_types=[ShipOrder], observability=recorded
    )
    insert = text(f"INSERT INTO {prefix}orders (id) VALUES (:id)")
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        session.execute(insert, {"id": "o-1"})
        doomed = sync.start_chain(ShipOrder(Order("o-1")), tx=session)
        raise RuntimeError("declined")
    with Session(engine) as session, session.begin():
        session.execute(insert, {"id": "o-2"})
        kept = sync.start_chain(ShipOrder(Order("o-2")), tx=session)
        nested = session.begin_nested()
        dropped = sync.start_chain(ShipOrder(Order("o-3")), tx=session)
        nested.rollback()
    assert created(recorded) == [kept.id]
    with Session(engine) as session:
        assert sync.get_chain(doomed.id, tx=session) is None
        assert sync.get_chain(dropped.id, tx=session) is None
        assert sync.get_chain(kept.id, tx=session) is not None
        ids = session.execute(text(f"SELECT id FROM {prefix}orders")).scalars().all()
        assert list(ids) == ["o-2"]


def test_a_failed_statement_does_not_spill_into_the_next_transaction(
    sync: SyncClient[Any], conn: Any, prefix: str
) -> None:
    """A statement of queuert's that fails (here: a lock wait timeout) marks its transaction as
    aborted; once the caller rolled it back, a new transaction begun inside ``sync.hooks`` on the
    same connection is not refused because of it."""
    with sync.transaction(conn):
        locked = sync.start_chain(ShipOrder(Order("o-locked")), tx=conn)
    holder = pymysql.connect(**pymysql_args())
    try:
        holder.begin()
        with holder.cursor() as cur:
            cur.execute(f"SELECT id FROM `{prefix}job` WHERE id = %s FOR UPDATE", (locked.id,))
        with conn.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
        with pytest.raises(pymysql.err.OperationalError), sync.hooks(conn):
            conn.begin()
            sync.cancel_chain(locked.id, tx=conn)  # waits for the holder's lock, then gives up
        conn.rollback()
        with sync.hooks(conn):
            conn.begin()  # the caller begins its next transaction itself
            fresh = sync.start_chain(ShipOrder(Order("o-fresh")), tx=conn)
            conn.commit()
    finally:
        holder.rollback()
        holder.close()
    conn.begin()
    assert sync.get_chain(fresh.id, ShipOrder, tx=conn) is not None
    conn.rollback()


def test_a_failed_statement_in_a_session_does_not_spill_into_the_next_one(
    prefix: str, recorded: RecordingObservability
) -> None:
    """The same with SQLAlchemy sessions: after a session's transaction in which a statement of
    queuert's failed rolls back, the next session on the same pooled connection, whose own
    write begins its transaction first, is not refused."""
    engine = create_engine(
        URL.replace("mysql://", "mysql+pymysql://", 1),
        isolation_level="READ COMMITTED",
        pool_size=1,
        max_overflow=0,
    )
    sync = SyncClient(
        SqlAlchemySyncBackend(table_prefix=prefix), job_types=[ShipOrder], observability=recorded
    )
    holder = pymysql.connect(**pymysql_args())
    try:
        with holder.cursor() as cur:
            cur.execute(f"CREATE TABLE `{prefix}orders` (id VARCHAR(20) PRIMARY KEY)")
        with Session(engine) as session, session.begin():
            locked = sync.start_chain(ShipOrder(Order("o-locked")), tx=session)
        holder.begin()
        with holder.cursor() as cur:
            cur.execute(f"SELECT id FROM `{prefix}job` WHERE id = %s FOR UPDATE", (locked.id,))
        with (
            pytest.raises(pymysql.err.OperationalError),
            Session(engine) as session,
            session.begin(),
        ):
            session.execute(text("SET SESSION innodb_lock_wait_timeout = 1"))
            sync.cancel_chain(locked.id, tx=session)  # waits for the lock, then gives up
        with Session(engine) as session, session.begin():
            # the session's own write begins its transaction first
            session.execute(text(f"INSERT INTO `{prefix}orders` VALUES ('o-fresh')"))
            fresh = sync.start_chain(ShipOrder(Order("o-fresh")), tx=session)
        with Session(engine) as session:
            assert sync.get_chain(fresh.id, ShipOrder, tx=session) is not None
    finally:
        holder.rollback()
        with holder.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{prefix}orders`")
        holder.close()
        engine.dispose()


def test_a_transaction_begun_by_a_read_is_the_one_the_chain_joins(
    sync: SyncClient[Any], conn: Any, prefix: str, recorded: RecordingObservability
) -> None:
    """With autocommit off, the caller's first read begins its transaction (PyMySQL is not told):
    the chain joins that transaction, commits with it and rolls back with it."""
    chains = []
    for commit in (False, True):
        with contextlib.suppress(RuntimeError), sync.hooks(conn):
            with conn.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM `{prefix}job`")
            chain = sync.start_chain(ShipOrder(Order(f"o-read-{commit}")), tx=conn)
            chains.append(chain.id)
            if not commit:
                conn.rollback()
                raise RuntimeError("the request failed")
            conn.commit()
        conn.begin()
        assert (sync.get_chain(chain.id, tx=conn) is not None) is commit
        conn.rollback()
    assert created(recorded) == chains[1:]


def test_a_session_that_reads_first_starts_a_chain_in_its_transaction(
    prefix: str, recorded: RecordingObservability
) -> None:
    """A SQLAlchemy session whose first statement is a read of the application's starts a chain
    in the transaction that read began."""
    engine = create_engine(
        URL.replace("mysql://", "mysql+pymysql://", 1), isolation_level="READ COMMITTED"
    )
    sync = SyncClient(
        SqlAlchemySyncBackend(table_prefix=prefix), job_types=[ShipOrder], observability=recorded
    )
    try:
        with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
            session.execute(text(f"SELECT COUNT(*) FROM `{prefix}job`"))
            doomed = sync.start_chain(ShipOrder(Order("o-doomed")), tx=session)
            raise RuntimeError("the request failed")
        with Session(engine) as session, session.begin():
            session.execute(text(f"SELECT COUNT(*) FROM `{prefix}job`"))
            kept = sync.start_chain(ShipOrder(Order("o-kept")), tx=session)
        with Session(engine) as session:
            assert sync.get_chain(doomed.id, tx=session) is None
            assert sync.get_chain(kept.id, ShipOrder, tx=session) is not None
        assert created(recorded) == [kept.id]
    finally:
        engine.dispose()
