"""SyncClient on psycopg 3 sync connections: chains start in the caller's transaction, their
wake-ups travel as NOTIFY inside it (delivered on commit, dropped on rollback), and an asyncio
worker in another thread, listening with PgNotifyAdapter, processes them."""

from __future__ import annotations

import asyncio
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from pg_helpers import DSN, Namespace, drop_namespace, unique_schema
from queuert import (
    Attempt,
    Client,
    EntryJobType,
    SyncClient,
    TransactionHooksRequiredError,
    UsageError,
    Worker,
)
from queuert_postgres import PgNotifyAdapter, PgStateAdapter, PsycopgSyncBackend

WAIT = 20.0
"""Seconds any wait in these tests may take before it fails."""


@dataclass
class Order:
    order_id: int


class ShipOrder(EntryJobType[Order, str]):
    pass


class Barrier(EntryJobType[Order, str]):
    """Started after the transaction under test: its wake-up proves earlier ones were sent."""


@pytest.fixture
async def namespace() -> AsyncIterator[Namespace]:
    ns = Namespace(unique_schema(), "queuert_")
    async with PgStateAdapter.connect(DSN, schema=ns.schema) as state:
        await state.migrate()
    yield ns
    await drop_namespace(ns)


@pytest.fixture
def channel_prefix() -> str:
    return f"qs{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sync(namespace: Namespace, channel_prefix: str) -> SyncClient[psycopg.Connection[Any]]:
    return SyncClient(
        PsycopgSyncBackend(schema=namespace.schema, channel_prefix=channel_prefix),
        job_types=[ShipOrder, Barrier],
    )


@pytest.fixture
def conn(namespace: Namespace) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(DSN) as connection:
        connection.execute(f'CREATE TABLE "{namespace.schema}".orders (id int PRIMARY KEY)')
        connection.commit()
        yield connection


@pytest.fixture
def listener(channel_prefix: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(DSN, autocommit=True) as connection:
        connection.execute(f"LISTEN {channel_prefix}_sched")
        yield connection


def received(listener: psycopg.Connection[Any], stop_after: int) -> list[str]:
    return [n.payload for n in listener.notifies(timeout=WAIT, stop_after=stop_after)]


def test_commit_delivers_the_wake_up_and_rollback_drops_it(
    sync: SyncClient[psycopg.Connection[Any]],
    conn: psycopg.Connection[Any],
    listener: psycopg.Connection[Any],
    namespace: Namespace,
) -> None:
    with sync.hooks(conn), conn.transaction():
        chain = sync.start_chain(ShipOrder(Order(1)), tx=conn)
    assert received(listener, 1) == ["ship_order"]
    with pytest.raises(RuntimeError), sync.hooks(conn), conn.transaction():
        conn.execute(f'INSERT INTO "{namespace.schema}".orders (id) VALUES (2)')
        doomed = sync.start_chain(ShipOrder(Order(2)), tx=conn)
        raise RuntimeError("the request failed")
    with sync.hooks(conn), conn.transaction():
        assert sync.get_chain(doomed.id, tx=conn) is None
        assert sync.get_chain(chain.id, ShipOrder, tx=conn) is not None
        assert conn.execute(f'SELECT count(*) FROM "{namespace.schema}".orders').fetchone() == (0,)
        sync.start_chain(Barrier(Order(3)), tx=conn)
    # the rolled-back transaction's NOTIFY never came: the barrier's is the next one
    assert received(listener, 1) == ["barrier"]


def test_a_rolled_back_savepoint_drops_its_chain_and_its_wake_up(
    sync: SyncClient[psycopg.Connection[Any]],
    conn: psycopg.Connection[Any],
    listener: psycopg.Connection[Any],
) -> None:
    with sync.hooks(conn), conn.transaction():
        with pytest.raises(KeyError), sync.savepoint(conn):
            dropped = sync.start_chain(ShipOrder(Order(1)), tx=conn)
            raise KeyError("inner")
        with conn.transaction():  # psycopg's own savepoint works too
            kept = sync.start_chain(Barrier(Order(2)), tx=conn)
    assert received(listener, 1) == ["barrier"]
    with conn.transaction():
        assert sync.get_chain(dropped.id, tx=conn) is None
        assert sync.get_chain(kept.id, tx=conn) is not None


def test_an_asyncio_worker_in_another_thread_processes_a_committed_chain(
    sync: SyncClient[psycopg.Connection[Any]],
    conn: psycopg.Connection[Any],
    namespace: Namespace,
    channel_prefix: str,
) -> None:
    processed: queue.Queue[int] = queue.Queue()
    ready = threading.Event()
    loop_box: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def run_worker() -> None:
        async with (
            PgStateAdapter.connect(DSN, schema=namespace.schema) as state,
            PgNotifyAdapter(DSN, channel_prefix=channel_prefix) as notify,
            Client(state, notify=notify) as client,
        ):
            worker = Worker(client, poll_interval=60)  # within WAIT only a wake-up finds the job

            @worker.handler(ShipOrder)
            async def ship(attempt: Attempt[ShipOrder]) -> str:
                processed.put(attempt.input.order_id)
                return "shipped"

            stop = asyncio.Event()
            async with worker:
                loop_box.append((asyncio.get_running_loop(), stop))
                ready.set()
                await stop.wait()

    thread = threading.Thread(target=lambda: asyncio.run(run_worker()), daemon=True)
    thread.start()
    try:
        assert ready.wait(WAIT), "the worker did not start"
        with sync.hooks(conn), conn.transaction():
            conn.execute(f'INSERT INTO "{namespace.schema}".orders (id) VALUES (9)')
            sync.start_chain(ShipOrder(Order(9)), tx=conn)
        assert processed.get(timeout=WAIT) == 9
    finally:
        if loop_box:
            loop, stop = loop_box[0]
            loop.call_soon_threadsafe(stop.set)
        thread.join(WAIT)
    assert not thread.is_alive()


def test_workerless_completion_cancel_and_delete(
    sync: SyncClient[psycopg.Connection[Any]], conn: psycopg.Connection[Any]
) -> None:
    with sync.hooks(conn), conn.transaction():
        first = sync.start_chain(ShipOrder(Order(1)), tx=conn)
        second = sync.start_chain(ShipOrder(Order(2)), tx=conn)
    with sync.hooks(conn), conn.transaction():
        done = sync.complete_chain(
            first, ShipOrder, lambda c: f"by hand {c.input.order_id}", tx=conn
        )
        cancelled = sync.cancel_chain(second, tx=conn)
    assert (done.output, cancelled.outcome) == ("by hand 1", "cancelled")
    with sync.hooks(conn), conn.transaction():
        assert len(sync.delete_chains([first, second], tx=conn)) == 2
        assert sync.list_chains(tx=conn).items == []


def test_calls_need_hooks_and_a_transaction(
    sync: SyncClient[psycopg.Connection[Any]], conn: psycopg.Connection[Any]
) -> None:
    with pytest.raises(TransactionHooksRequiredError):
        sync.start_chain(ShipOrder(Order(1)), tx=conn)
    conn.rollback()
    with psycopg.connect(DSN, autocommit=True) as autocommit:
        with pytest.raises(UsageError, match="autocommit"), sync.hooks(autocommit):
            sync.start_chain(ShipOrder(Order(1)), tx=autocommit)
        assert sync.list_chains(tx=autocommit).items == []  # a read needs no transaction


async def test_an_async_connection_is_refused(sync: SyncClient[Any]) -> None:
    async with await psycopg.AsyncConnection.connect(DSN) as aconn:
        with pytest.raises(UsageError, match="not a psycopg \\(sync\\) Connection"):
            await asyncio.to_thread(sync.list_chains, tx=aconn)
