"""Synchronous code: a chain started on your own ``sqlite3`` connection, in your own transaction.

    uv run python -m examples.sync_enqueue

A synchronous application (a WSGI view, a script, a management command) writes its order row and
starts the chain with ``SyncClient`` on the same ``sqlite3.Connection``, in one transaction:

- a rollback removes both, and no wake-up is sent;
- a commit keeps both; the asyncio worker, here in a thread of the same process, is woken after the
  commit (``notify=`` / ``notify_loop=``: its notify adapter and its event loop) and ships the order.
  A worker in another process would find it at its next poll.
- ``wait_for_chain`` blocks until the worker has closed the chain and returns its output;
- ``complete_chain`` finishes a job by hand from synchronous code, with the same typing.

The SQLite file lives in a temporary directory.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from queuert import (
    Attempt,
    Client,
    EntryJobType,
    InProcessNotifyAdapter,
    SyncClient,
    SyncWorkerlessCompletion,
    Worker,
)
from queuert_sqlite import SqliteStateAdapter, SqliteSyncBackend


@dataclass
class Order:
    order_id: str


@dataclass
class Shipment:
    tracking: str


class ShipOrder(EntryJobType[Order, Shipment]):
    pass


class ApproveRefund(EntryJobType[Order, bool]):
    """Decided by a person: completed from outside any worker."""


class WorkerThread:
    """The asyncio side: a worker on the same database file, on an event loop in its own thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.notify: InProcessNotifyAdapter | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()))

    async def _main(self) -> None:
        async with (
            SqliteStateAdapter.open(self.path) as state,
            InProcessNotifyAdapter() as notify,
            Client(state, notify=notify) as client,
        ):
            worker = Worker(client, poll_interval=60)

            @worker.handler(ShipOrder)
            async def ship(attempt: Attempt[ShipOrder]) -> Shipment:
                return Shipment(f"TRK-{attempt.input.order_id}")

            self._stop = asyncio.Event()
            async with worker:
                self.loop, self.notify = asyncio.get_running_loop(), notify
                self.ready.set()
                await self._stop.wait()

    def __enter__(self) -> WorkerThread:
        self._thread.start()
        if not self.ready.wait(30):
            raise TimeoutError("the worker did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def migrate(path: Path) -> None:
    async def run() -> None:
        async with SqliteStateAdapter.open(path) as state:
            await state.migrate()

    asyncio.run(run())


def main() -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "shop.db"
        migrate(path)
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT NOT NULL)")
        conn.commit()
        with WorkerThread(path) as worker:
            assert worker.notify is not None
            sync = SyncClient(
                SqliteSyncBackend(),
                job_types=[ShipOrder, ApproveRefund],
                notify=worker.notify,  # wake this process's worker after each commit
                notify_loop=worker.loop,
            )

            # A failed request: the row and the chain roll back together.
            try:
                with sync.hooks(conn):
                    conn.execute("INSERT INTO orders VALUES ('o-1', 'new')")
                    declined = sync.start_chain(ShipOrder(Order("o-1")), tx=conn)
                    raise ValueError("card declined")
            except ValueError:
                conn.rollback()
            results["declined_chain"] = sync.get_chain(declined.id, tx=conn)

            # A good one: both commit; the worker is woken after the commit.
            with sync.hooks(conn):
                conn.execute("INSERT INTO orders VALUES ('o-2', 'new')")
                chain = sync.start_chain(ShipOrder(Order("o-2")), tx=conn)  # Chain[ShipOrder]
                conn.commit()
            # Block until the worker has shipped it: the chain-closed notification ends the wait.
            results["shipment"] = sync.wait_for_chain(chain, tx=conn, timeout=30)  # Shipment

            # Workerless completion from synchronous code: a person approves a refund.
            with sync.hooks(conn):
                refund = sync.start_chain(ApproveRefund(Order("o-2")), tx=conn)
                conn.commit()

            def approve(completion: SyncWorkerlessCompletion[sqlite3.Connection, Order]) -> bool:
                completion.tx.execute(
                    "UPDATE orders SET status = 'refunded' WHERE id = ?",
                    (completion.input.order_id,),
                )
                return True

            with sync.hooks(conn):
                approved = sync.complete_chain(refund, ApproveRefund, approve, tx=conn)
                conn.commit()
            results["refund"] = approved.output
            results["row"] = conn.execute("SELECT status FROM orders WHERE id = 'o-2'").fetchone()
            results["chain"] = chain.id
            sync.wait_published()  # hand the last wake-ups over before the worker's loop stops
        conn.close()
    return results


if __name__ == "__main__":
    print(main())
