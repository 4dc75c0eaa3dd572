"""Several worker processes on one SQLite file: 4 processes drain 2,000 two-step chains and every
chain completes exactly once."""

from __future__ import annotations

import asyncio
import collections
import signal
import sys
from pathlib import Path
from typing import Any

from queuert import Client
from queuert_sqlite import from_url
from sqlite_worker_proc import Order, Place, Ship

CHAINS = 2000
PROCESSES = 4


async def test_four_worker_processes_drain_2000_chains_exactly_once(tmp_path: Path) -> None:
    database = tmp_path / "shared.db"
    state = await from_url(f"sqlite:///{database}")
    await state.migrate()
    client: Client[Any] = Client(state, job_types=[Place, Ship])
    chains = []
    for offset in range(0, CHAINS, 100):
        async with client.transaction() as tx:
            chains += await client.start_chains(
                [Place(Order(n)) for n in range(offset, offset + 100)], tx=tx
            )
    script = Path(__file__).with_name("sqlite_worker_proc.py")
    logs = [tmp_path / f"worker{i}.log" for i in range(PROCESSES)]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            str(database),
            str(log),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for log in logs
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert (await asyncio.wait_for(process.stdout.readline(), 60)).strip() == b"ready"

        async def all_closed() -> None:
            while True:
                page = await client.list_chains(status="open", limit=1)
                if not page.items:
                    return
                await asyncio.sleep(0.2)

        await asyncio.wait_for(all_closed(), 240)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            _, err = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode == 0, err.decode()
    executions: collections.Counter[str] = collections.Counter()
    per_process = []
    for log in logs:
        lines = log.read_text().splitlines()
        per_process.append(len(lines))
        executions.update(line.split()[0] for line in lines)
    assert len(executions) == 2 * CHAINS, "every job ran"
    assert max(executions.values()) == 1, "no job ran twice"
    assert all(count > 0 for count in per_process), f"every process took work: {per_process}"
    for chain in chains[:: CHAINS // 50]:
        jobs = (await client.list_chain_jobs(chain.id)).items
        assert [j.type_name for j in jobs] == ["mp_place", "mp_ship"]
        assert jobs[1].status == "completed"
    outputs = [await client.wait_for_chain(c, timeout=1) for c in chains[:20]]
    assert [o.doubled for o in outputs] == [2 * n for n in range(20)]
    await client.close()
    await state.close()
