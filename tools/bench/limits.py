"""Processing throughput with a concurrency limit on the job type against the same jobs without one.

    uv run python tools/bench/limits.py --dsn postgresql://postgres@127.0.0.1:5432/test --runs 5
    uv run python tools/bench/limits.py --dsn sqlite:///bench.db --runs 5

Each run starts ``--chains`` one-job chains in batches of 100, then one worker at concurrency 10
processes them (a no-op handler whose output the worker group-commits), timed from the worker's start
to the last completion. The type is either unlimited or declares ``limit=`` larger than the
concurrency (``--limit``, default 50), so the limit never holds a job back: the figure is the cost of
the limited claim itself. The two alternate run by run, each in a fresh child process on a fresh
schema or database file; reported as medians with the range.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from typing import Any

from bench import (
    Countdown,
    Done,
    Item,
    describe_backend,
    drop_backend,
    isolated_dsn,
    open_backend,
    remove_sqlite_files,
    run_in_child,
)
from queuert import Attempt, Client, EntryJobType, Worker
from queuert.backoff import Lease


class Plain(EntryJobType[Item, Done], name="bench_limits_plain"):
    pass


def limited_type(limit: int) -> type[EntryJobType[Item, Done]]:
    class Capped(EntryJobType[Item, Done], name="bench_limits_capped", limit=limit):
        pass

    return Capped


async def run(dsn: str, chains: int, limit: int | None) -> dict[str, float]:
    state, notifier = await open_backend(dsn, "in_process")
    job_type = Plain if limit is None else limited_type(limit)
    observability = Countdown(chains)
    client: Client[Any] = Client(
        state, job_types=[job_type], notify=notifier, observability=observability
    )
    worker: Worker[Any] = Worker(client, concurrency=10, poll_interval=1.0, lease=Lease(60, 30))

    async def noop(attempt: Attempt[Any]) -> Done:
        return Done(True)

    worker.register(job_type, noop)
    try:
        for start in range(0, chains, 100):
            async with client.transaction() as tx:
                await client.start_chains(
                    [job_type(Item(i)) for i in range(start, min(start + 100, chains))], tx=tx
                )
        t0 = time.perf_counter()
        async with worker:
            await asyncio.wait_for(observability.done.wait(), 600)
        seconds = time.perf_counter() - t0
    finally:
        await client.close()
        await state.close()
        await drop_backend(dsn)
        remove_sqlite_files(dsn)
    return {"jobs_per_s": chains / seconds}


def child(dsn: str, chains: int, limit: int | None) -> float:
    tagged = isolated_dsn(dsn, f"lim{uuid.uuid4().hex[:8]}")
    result = run_in_child(__file__, [json.dumps([tagged, chains, limit])], "limits run")
    return float(result["jobs_per_s"])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        dsn, chains, limit = json.loads(sys.argv[2])
        print(json.dumps(asyncio.run(run(dsn, chains, limit))))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="sqlite:///bench.db")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chains", type=int, default=3000)
    parser.add_argument("--limit", type=int, default=50)
    args = parser.parse_args()
    print(
        f"queuert bench: limits, {describe_backend(args.dsn)}; {args.chains} chains, "
        f"concurrency 10, limit {args.limit}; {args.runs} runs each, medians (min..max)"
    )
    figures: dict[str, list[float]] = {"no limit": [], "limit": []}
    for _ in range(args.runs):
        figures["no limit"].append(child(args.dsn, args.chains, None))
        figures["limit"].append(child(args.dsn, args.chains, args.limit))
    for label, values in figures.items():
        print(
            f"  {label:<9}{statistics.median(values):>9,.0f} jobs/s "
            f"({min(values):,.0f}..{max(values):,.0f})"
        )
    ratio = statistics.median(figures["limit"]) / statistics.median(figures["no limit"])
    print(f"  limit / no limit: {ratio:.2f}")


if __name__ == "__main__":
    main()
