"""Event loops and PostgreSQL drivers compared: asyncio against uvloop, asyncpg against psycopg 3.

    uv run python tools/bench/runtimes.py --dsn postgresql://postgres@127.0.0.1:5432/test --runs 5

The same workload for each combination, alternating combinations round by round so that a drifting
machine affects all alike: start ``--chains`` one-job chains in batches of 100, then process them
with one worker at concurrency 10 (returned outputs, grouped into shared completions), and start
``--single`` more one by one, each in its own transaction. Each run is a fresh child process in a
schema of its own, dropped afterwards. Reports medians (and the range) of batch starts, one-by-one
starts, processing rate and the worker's CPU time per job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from bench import Countdown, run_in_child
from queuert import Attempt, Client, EntryJobType, InProcessNotifyAdapter, Worker
from queuert.backoff import Lease
from queuert_postgres import AsyncpgProvider, PgStateAdapter, PsycopgProvider

COMBINATIONS = [
    ("asyncio", "asyncpg"),
    ("uvloop", "asyncpg"),
    ("asyncio", "psycopg"),
    ("uvloop", "psycopg"),
]


@dataclass
class Item:
    index: int


class Noop(EntryJobType[Item, Item], name="runtimes_noop"):
    pass


async def measure(dsn: str, driver: str, chains: int, single: int) -> dict[str, float]:
    schema = f"runtimes_{uuid.uuid4().hex[:10]}"
    provider: Any = (
        await AsyncpgProvider.connect(dsn) if driver == "asyncpg" else PsycopgProvider(dsn)
    )
    state: PgStateAdapter[Any] = PgStateAdapter(provider, schema=schema)
    try:
        await state.migrate()
        countdown = Countdown(chains)
        client: Client[Any] = Client(
            state, job_types=[Noop], notify=InProcessNotifyAdapter(), observability=countdown
        )
        worker: Worker[Any] = Worker(client, concurrency=10, poll_interval=1.0, lease=Lease(60, 30))

        @worker.handler(Noop)
        async def noop(attempt: Attempt[Noop]) -> Item:
            return attempt.input

        began = time.perf_counter()
        for offset in range(0, chains, 100):
            jobs = [Noop(Item(i)) for i in range(offset, min(offset + 100, chains))]
            async with client.transaction() as tx:
                await client.start_chains(jobs, tx=tx)
        batch = time.perf_counter() - began

        began, cpu = time.perf_counter(), time.process_time()
        async with worker:
            await countdown.done.wait()
        processed = time.perf_counter() - began
        cpu_used = time.process_time() - cpu

        began = time.perf_counter()
        for i in range(single):
            async with client.transaction() as tx:
                await client.start_chain(Noop(Item(i)), tx=tx)
        one_by_one = time.perf_counter() - began
        await client.close()
        return {
            "batch_per_s": chains / batch,
            "single_per_s": single / one_by_one,
            "process_per_s": chains / processed,
            "cpu_us_per_job": cpu_used / chains * 1e6,
        }
    finally:
        await state.close()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


def run_child(loop: str, driver: str, dsn: str, chains: int, single: int) -> None:
    work = measure(dsn, driver, chains, single)
    if loop == "uvloop":
        import uvloop

        result = uvloop.run(work)
    else:
        result = asyncio.run(work)
    print(json.dumps(result))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        payload = json.loads(sys.argv[2])
        run_child(**payload)
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chains", type=int, default=5000)
    parser.add_argument("--single", type=int, default=1000)
    args = parser.parse_args()
    print(
        f"queuert bench: runtimes, python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cpus; {args.runs} rounds, medians (min..max)"
    )
    results: dict[tuple[str, str], list[dict[str, float]]] = {c: [] for c in COMBINATIONS}
    for _ in range(args.runs):
        for loop, driver in COMBINATIONS:
            payload = {
                "loop": loop,
                "driver": driver,
                "dsn": args.dsn,
                "chains": args.chains,
                "single": args.single,
            }
            results[(loop, driver)].append(
                run_in_child(__file__, [json.dumps(payload)], f"{loop}/{driver}")
            )
    columns = [
        ("batch_per_s", "batch starts/s"),
        ("single_per_s", "single starts/s"),
        ("process_per_s", "process jobs/s"),
        ("cpu_us_per_job", "CPU us/job"),
    ]
    print(f"{'loop':<9}{'driver':<9}" + "".join(f"{title:>18}" for _, title in columns))
    for loop, driver in COMBINATIONS:
        runs = results[(loop, driver)]
        cells = []
        for key, _ in columns:
            values = [r[key] for r in runs]
            cells.append(f"{statistics.median(values):>18,.0f}")
        print(f"{loop:<9}{driver:<9}" + "".join(cells))
        spread = "  ".join(
            f"{key}: {min(r[key] for r in runs):,.0f}..{max(r[key] for r in runs):,.0f}"
            for key, _ in columns
        )
        print(f"{'':<18}({spread})")


if __name__ == "__main__":
    main()
