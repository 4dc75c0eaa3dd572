"""A separate OS process for the multi-process SQLite tests (not collected as tests).

Usage: ``python sqlite_proc.py MODE DATABASE PREFIX``. The process opens the adapter, prints
``ready``, waits for one line on stdin (a barrier, so that every process starts together), runs MODE
and prints one JSON line with its result.

Modes:
    migrate      ``await adapter.migrate()``; result: the applied / skipped lists.
    drain        claim batches without a transaction, complete each job in its own transaction.
    drain_atomic claim one job and complete it in the same transaction (atomic processing).
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta

from queuert_sqlite import SqliteStateAdapter

TYPE = "sqlite.proc"
LEASES = {TYPE: timedelta(minutes=5)}


async def drain(adapter: SqliteStateAdapter, worker: str) -> list[str]:
    done: list[str] = []
    while True:
        claimed = await adapter.claim_jobs(leases=LEASES, limit=5, worker_id=worker)
        if not claimed.jobs:
            return done
        for job in claimed.jobs:
            async with adapter.transaction() as tx:
                locked = await adapter.get_job(job.id, lock=True, tx=tx)
                assert locked is not None and locked.leased_by == worker, locked
                await adapter.complete_job(
                    job.id, outcome="completed", worker_id=worker, output=worker, tx=tx
                )
            done.append(job.id)


async def drain_atomic(adapter: SqliteStateAdapter, worker: str) -> list[str]:
    done: list[str] = []
    while True:
        async with adapter.transaction() as tx:
            claimed = await adapter.claim_jobs(leases=LEASES, limit=1, worker_id=worker, tx=tx)
            if not claimed.jobs:
                return done
            (job,) = claimed.jobs
            await adapter.complete_job(
                job.id, outcome="completed", worker_id=worker, output=worker, tx=tx
            )
        done.append(job.id)


async def main() -> None:
    mode, database, prefix = sys.argv[1:4]
    worker = f"{mode}-{sys.argv[4] if len(sys.argv) > 4 else '0'}"
    adapter = await SqliteStateAdapter.open(database, table_prefix=prefix, busy_timeout=10.0)
    try:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        result: object
        if mode == "migrate":
            migrated = await adapter.migrate()
            result = {"applied": migrated.applied, "skipped": migrated.skipped}
        elif mode == "drain":
            result = await drain(adapter, worker)
        elif mode == "drain_atomic":
            result = await drain_atomic(adapter, worker)
        else:
            raise SystemExit(f"unknown mode {mode}")
        print(json.dumps(result), flush=True)
    finally:
        await adapter.close()


if __name__ == "__main__":
    asyncio.run(main())
