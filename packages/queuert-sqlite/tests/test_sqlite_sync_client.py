"""SyncClient on Python's sqlite3: chains start in the caller's transaction, follow its commit or
rollback, and reach an asyncio worker running in another thread."""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from queuert import (
    Attempt,
    Chain,
    ChainCancelledError,
    ChainNotFoundError,
    Client,
    Continues,
    EntryJobType,
    InProcessNotifyAdapter,
    JobType,
    JobTypeMismatchError,
    RecordingObservability,
    SyncCallInEventLoopError,
    SyncClient,
    SyncWorkerlessCompletion,
    TransactionHooksRequiredError,
    UsageError,
    WaitChainTimeoutError,
    Worker,
)
from queuert.observability import ChainCreated
from queuert_sqlite import SqliteStateAdapter, SqliteSyncBackend
from sync_worker_proc import Parcel, SendParcel

WAIT = 20.0
"""Seconds any wait in these tests may take before it fails."""


@dataclass
class Order:
    order_id: int


class ShipOrder(EntryJobType[Order, str]):
    pass


class Review(EntryJobType[Order, str], Continues["Archive"]):
    """Completed from outside a worker: a person approves, the chain continues."""


class Archive(JobType[str, str]):
    pass


class Barrier(EntryJobType[Order, str]):
    """Started after the transaction under test: its wake-up proves earlier ones were sent."""


def migrate(path: Path, prefix: str) -> None:
    async def run() -> None:
        async with SqliteStateAdapter.open(path, table_prefix=prefix) as state:
            await state.migrate()

    asyncio.run(run())


@pytest.fixture
def database(db_path: Path, table_prefix: str) -> Path:
    migrate(db_path, table_prefix)
    return db_path


@pytest.fixture
def conn(database: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(database, timeout=WAIT)
    connection.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY)")
    connection.commit()
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def sync(table_prefix: str) -> SyncClient[sqlite3.Connection]:
    return SyncClient(
        SqliteSyncBackend(table_prefix=table_prefix), job_types=[ShipOrder, Review, Barrier]
    )


def count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


class WorkerThread:
    """An asyncio worker on the same database file, in a thread with its own event loop. It polls
    once a minute, so within the tests' waits only a wake-up makes it look for work."""

    def __init__(self, path: Path, prefix: str) -> None:
        self._path = path
        self._prefix = prefix
        self.processed: queue.Queue[tuple[str, int]] = queue.Queue()
        self.woken: queue.Queue[str] = queue.Queue()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.notify: InProcessNotifyAdapter | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._error: BaseException | None = None

    async def _main(self) -> None:
        try:
            async with (
                SqliteStateAdapter.open(self._path, table_prefix=self._prefix) as state,
                InProcessNotifyAdapter() as notify,
                Client(state, notify=notify) as client,
            ):
                worker = Worker(client, poll_interval=60)

                @worker.handler(ShipOrder)
                async def ship(attempt: Attempt[ShipOrder]) -> str:
                    self.processed.put(("ship_order", attempt.input.order_id))
                    return "shipped"

                @worker.handler(Barrier)
                async def barrier(attempt: Attempt[Barrier]) -> str:
                    self.processed.put(("barrier", attempt.input.order_id))
                    return "done"

                await notify.listen_job_scheduled(["ship_order", "barrier"], self.woken.put)
                self._stop = asyncio.Event()
                async with worker:
                    self.loop, self.notify = asyncio.get_running_loop(), notify
                    self._ready.set()
                    await self._stop.wait()
        except BaseException as error:
            self._error = error
            self._ready.set()
            raise

    def __enter__(self) -> WorkerThread:
        self._thread.start()
        assert self._ready.wait(WAIT), "the worker thread did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.loop is not None and self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the worker thread did not stop"

    def next_processed(self) -> tuple[str, int]:
        return self.processed.get(timeout=WAIT)


@pytest.fixture
def worker_thread(database: Path, table_prefix: str) -> Iterator[WorkerThread]:
    with WorkerThread(database, table_prefix) as running:
        yield running


def woken_client(worker: WorkerThread, prefix: str) -> SyncClient[sqlite3.Connection]:
    assert worker.notify is not None
    return SyncClient(
        SqliteSyncBackend(table_prefix=prefix),
        job_types=[ShipOrder, Barrier],
        notify=worker.notify,
        notify_loop=worker.loop,
    )


def test_a_committed_chain_wakes_the_worker_thread_and_is_processed(
    conn: sqlite3.Connection, worker_thread: WorkerThread, table_prefix: str
) -> None:
    sync = woken_client(worker_thread, table_prefix)
    with sync.hooks(conn):
        conn.execute("INSERT INTO orders (id) VALUES (1)")
        chain = sync.start_chain(ShipOrder(Order(1)), tx=conn)
        assert chain.status == "open"
        conn.commit()
    sync.wait_published()  # the wake-up has reached the worker's notify adapter
    assert worker_thread.woken.get_nowait() == "ship_order"
    assert worker_thread.next_processed() == ("ship_order", 1)


def test_wait_for_chain_ends_on_the_chain_closed_notification(
    conn: sqlite3.Connection, worker_thread: WorkerThread, table_prefix: str
) -> None:
    sync = woken_client(worker_thread, table_prefix)
    with sync.transaction(conn):
        chain = sync.start_chain(ShipOrder(Order(1)), tx=conn)
    began = time.monotonic()
    # no read is due before the deadline: only the notification can end the wait before it
    output = sync.wait_for_chain(chain, tx=conn, timeout=WAIT, poll_interval=3600)
    assert output == "shipped"
    assert time.monotonic() - began < WAIT


def test_wait_for_chain_reads_until_the_chain_closes_without_notifications(
    conn: sqlite3.Connection, worker_thread: WorkerThread, table_prefix: str
) -> None:
    starter = woken_client(worker_thread, table_prefix)
    with starter.transaction(conn):
        chain = starter.start_chain(ShipOrder(Order(2)), tx=conn)
    waiter = SyncClient(SqliteSyncBackend(table_prefix=table_prefix), job_types=[ShipOrder])
    assert waiter.wait_for_chain(
        chain.id, ShipOrder, tx=conn, timeout=WAIT, poll_interval=0.01
    ) == ("shipped")


def test_wait_for_chain_raises_what_the_async_wait_raises(
    conn: sqlite3.Connection, sync: SyncClient[sqlite3.Connection]
) -> None:
    with sync.transaction(conn):
        open_chain = sync.start_chain(ShipOrder(Order(3)), tx=conn)
        cancelled = sync.start_chain(ShipOrder(Order(4)), tx=conn)
    with sync.transaction(conn):
        sync.cancel_chain(cancelled, tx=conn)
    with pytest.raises(WaitChainTimeoutError):
        sync.wait_for_chain(open_chain, tx=conn, timeout=0.05, poll_interval=0.01)
    with pytest.raises(ChainCancelledError):
        sync.wait_for_chain(cancelled, tx=conn, timeout=WAIT)
    with pytest.raises(JobTypeMismatchError):
        sync.wait_for_chain(open_chain.id, Barrier, tx=conn, timeout=WAIT)
    with pytest.raises(ChainNotFoundError):
        sync.wait_for_chain("01a24ad0-865b-70bb-b28d-f6f43345a96c", tx=conn, timeout=WAIT)  # type: ignore[call-overload]


def test_a_rolled_back_chain_vanishes_with_the_rows_and_sends_no_wake_up(
    conn: sqlite3.Connection, worker_thread: WorkerThread, table_prefix: str
) -> None:
    sync = woken_client(worker_thread, table_prefix)
    with pytest.raises(RuntimeError), sync.hooks(conn):
        conn.execute("INSERT INTO orders (id) VALUES (1)")
        doomed = sync.start_chain(ShipOrder(Order(1)), tx=conn)
        raise RuntimeError("the request failed")
    conn.rollback()
    assert sync.get_chain(doomed.id, tx=conn) is None
    assert count(conn, "orders") == 0
    with sync.hooks(conn):
        sync.start_chain(Barrier(Order(2)), tx=conn)
        conn.commit()
    # messages from one publisher arrive in order: the barrier's wake-up is the first one
    assert worker_thread.woken.get(timeout=WAIT) == "barrier"
    assert worker_thread.next_processed() == ("barrier", 2)
    assert worker_thread.woken.empty()


def test_transaction_commits_or_rolls_back_and_announces_only_what_committed(
    conn: sqlite3.Connection, table_prefix: str
) -> None:
    recorded = RecordingObservability()
    sync = SyncClient(
        SqliteSyncBackend(table_prefix=table_prefix), job_types=[ShipOrder], observability=recorded
    )
    with pytest.raises(RuntimeError), sync.transaction(conn):
        conn.execute("INSERT INTO orders (id) VALUES (1)")
        doomed = sync.start_chain(ShipOrder(Order(1)), tx=conn)
        raise RuntimeError("the request failed")
    assert not conn.in_transaction
    with sync.transaction(conn):
        conn.execute("INSERT INTO orders (id) VALUES (2)")
        kept = sync.start_chain(ShipOrder(Order(2)), tx=conn)
        assert recorded.of(ChainCreated) == []
    assert [e.chain_id for e in recorded.of(ChainCreated)] == [kept.id]
    assert sync.get_chain(doomed.id, tx=conn) is None
    assert conn.execute("SELECT id FROM orders").fetchall() == [(2,)]


def test_the_chain_is_visible_in_the_transaction_and_to_others_only_after_commit(
    conn: sqlite3.Connection, database: Path, sync: SyncClient[sqlite3.Connection]
) -> None:
    other = sqlite3.connect(database, timeout=WAIT)
    try:
        with sync.hooks(conn):
            chain = sync.start_chain(ShipOrder(Order(7)), tx=conn)
            assert sync.get_chain(chain.id, ShipOrder, tx=conn) is not None
            assert sync.get_chain(chain.id, tx=other) is None
            conn.commit()
        found = sync.get_chain(chain.id, ShipOrder, tx=other)
        assert found is not None
        assert found.root.input == Order(7)
    finally:
        other.close()


def test_a_savepoint_that_raises_drops_only_its_chains(
    conn: sqlite3.Connection, sync: SyncClient[sqlite3.Connection]
) -> None:
    with sync.hooks(conn):
        kept = sync.start_chain(ShipOrder(Order(1)), tx=conn)
        with pytest.raises(KeyError), sync.savepoint(conn):
            dropped = sync.start_chain(ShipOrder(Order(2)), tx=conn)
            raise KeyError("inner")
        with sync.savepoint(conn):
            nested = sync.start_chain(ShipOrder(Order(3)), tx=conn)
        conn.commit()
    assert sync.get_chain(kept.id, tx=conn) is not None
    assert sync.get_chain(dropped.id, tx=conn) is None
    assert sync.get_chain(nested.id, tx=conn) is not None


def test_workerless_completion_continues_and_starts_chains_in_the_same_transaction(
    conn: sqlite3.Connection, sync: SyncClient[sqlite3.Connection]
) -> None:
    with sync.hooks(conn):
        review = sync.start_chain(Review(Order(5)), tx=conn)
        conn.commit()
    started: list[Chain[ShipOrder]] = []

    def approve(completion: SyncWorkerlessCompletion[sqlite3.Connection, Order]) -> Archive:
        started.append(completion.start_chain(ShipOrder(completion.input)))
        return Archive(f"approved {completion.input.order_id}")

    with sync.hooks(conn):
        continued = sync.complete_chain(review, Review, approve, tx=conn)
        conn.commit()
    assert continued.tail.type_name == "archive"
    assert continued.tail.input == "approved 5"
    assert sync.get_chain(started[0].id, ShipOrder, tx=conn) is not None
    with sync.hooks(conn):
        done = sync.complete_chain(continued, Archive, "archived", tx=conn)
        conn.commit()
    assert done.status == "closed"
    assert done.output == "archived"


def test_cancel_trigger_delete_and_list(
    conn: sqlite3.Connection, sync: SyncClient[sqlite3.Connection]
) -> None:
    with sync.hooks(conn):
        first = sync.start_chain(ShipOrder(Order(1)), tx=conn)
        second = sync.start_chain(ShipOrder(Order(2)), tx=conn)
        conn.commit()
    with sync.hooks(conn):
        cancelled = sync.cancel_chain(first, tx=conn)
        conn.commit()
    assert cancelled.outcome == "cancelled"
    page = sync.list_chains(type_names=[ShipOrder], status="open", tx=conn)
    assert [c.id for c in page.items] == [second.id]
    assert [s.type_name for s in sync.get_queue_stats(tx=conn)] == ["ship_order"]
    with sync.hooks(conn):
        deleted = sync.delete_chains([first, second], tx=conn)
        conn.commit()
    assert {c.id for c in deleted} == {first.id, second.id}
    assert sync.list_jobs(tx=conn).items == []


def test_a_write_without_hooks_is_refused_before_anything_is_written(
    conn: sqlite3.Connection, sync: SyncClient[sqlite3.Connection], table_prefix: str
) -> None:
    with pytest.raises(TransactionHooksRequiredError):
        sync.start_chain(ShipOrder(Order(1)), tx=conn)
    assert count(conn, f"{table_prefix}job") == 0


def test_an_autocommit_connection_without_a_transaction_is_refused(
    database: Path, sync: SyncClient[sqlite3.Connection]
) -> None:
    autocommit = sqlite3.connect(database, isolation_level=None)
    try:
        with pytest.raises(UsageError, match="autocommit"), sync.hooks(autocommit):
            sync.start_chain(ShipOrder(Order(1)), tx=autocommit)
        autocommit.execute("BEGIN")
        with sync.hooks(autocommit):
            chain = sync.start_chain(ShipOrder(Order(1)), tx=autocommit)
            autocommit.execute("COMMIT")
        assert sync.get_chain(chain.id, tx=autocommit) is not None
    finally:
        autocommit.close()


def test_calls_refuse_to_block_a_running_event_loop(
    database: Path, sync: SyncClient[sqlite3.Connection]
) -> None:
    conn = sqlite3.connect(database, check_same_thread=False)
    try:

        async def inside_a_loop() -> Any:
            return sync.list_chains(tx=conn)

        with pytest.raises(SyncCallInEventLoopError):
            asyncio.run(inside_a_loop())

        async def in_a_thread() -> Any:
            # what a coroutine does instead: the call runs on a thread without a loop
            return await asyncio.to_thread(sync.list_chains, tx=conn)

        assert asyncio.run(in_a_thread()).items == []
    finally:
        conn.close()


def test_a_tx_that_is_not_a_sqlite3_connection_is_refused(
    sync: SyncClient[sqlite3.Connection],
) -> None:
    with pytest.raises(UsageError, match="not a sqlite3 connection"):
        sync.get_chain("01a24ad0-865b-70bb-b28d-f6f43345a96c", tx="conn")  # type: ignore[arg-type]


def test_a_worker_in_another_process_processes_what_the_sync_client_committed(
    conn: sqlite3.Connection, database: Path, table_prefix: str
) -> None:
    sync = SyncClient(SqliteSyncBackend(table_prefix=table_prefix), job_types=[SendParcel])
    with sync.transaction(conn):
        chain = sync.start_chain(SendParcel(Parcel(3)), tx=conn)
    script = Path(__file__).with_name("sync_worker_proc.py")
    done = subprocess.run(
        [sys.executable, str(script), str(database), table_prefix, chain.id],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == "sent 3 from another process"
    closed = sync.get_chain(chain.id, SendParcel, tx=conn)
    assert closed is not None and closed.output == "sent 3 from another process"
