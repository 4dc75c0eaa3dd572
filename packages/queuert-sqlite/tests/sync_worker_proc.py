"""An asyncio worker OS process for the SyncClient tests (not collected as a test).

Usage: ``python sync_worker_proc.py DATABASE PREFIX CHAIN_ID``. Runs a Worker on the SQLite file,
waits (at most 20 s) for the chain to close and prints its output as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass

from queuert import Attempt, Client, EntryJobType, Worker
from queuert_sqlite import SqliteStateAdapter


@dataclass
class Parcel:
    parcel_id: int


class SendParcel(EntryJobType[Parcel, str]):
    pass


async def main() -> None:
    database, prefix, chain_id = sys.argv[1:4]
    async with (
        SqliteStateAdapter.open(database, table_prefix=prefix) as state,
        Client(state) as client,
    ):
        worker = Worker(client, poll_interval=0.2)  # another process: no wake-up reaches it

        @worker.handler(SendParcel)
        async def send(attempt: Attempt[SendParcel]) -> str:
            return f"sent {attempt.input.parcel_id} from another process"

        async with worker:
            output = await client.wait_for_chain(chain_id, SendParcel, timeout=20)
    print(json.dumps(output))


if __name__ == "__main__":
    asyncio.run(main())
