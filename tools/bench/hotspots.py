"""Where the time goes: the processing benchmark's phases under cProfile, and a one-by-one start split
into its three steps.

    uv run python tools/bench/hotspots.py --dsn sqlite:////tmp/profile.db
    uv run python tools/bench/hotspots.py --dsn postgresql://postgres@127.0.0.1/test --top 30

For each phase (start one by one, start in batches of 100 in a transaction and without one, process
no-op jobs at concurrency 10, and
on a database process jobs whose handler writes a row in the job's own transaction, bench.py's
``write-atomic``) it prints
the wall time per chain or job, the process's CPU time per chain or job (``getrusage``: the event
loop's thread and, on SQLite, the connection threads), the share of the event loop's time spent idle
in ``select`` (waiting for the database), and the functions with the most time of their own. cProfile
slows Python code down, so its figures are for proportions; the throughput figures come from
bench.py. Then, without the profiler, the median time of each step of a one-chain transaction:
entering ``client.transaction()``, ``start_chain`` and leaving the block (commit, side effects).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import resource
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench import (
    BenchJob,
    Countdown,
    Done,
    Item,
    RowWriter,
    drop_backend,
    isolated_dsn,
    remove_sqlite_files,
)
from queuert import Attempt, Client, EntryJobType, InProcessNotifyAdapter, TxContext, Worker
from queuert.backends import open_state_adapter
from queuert.backoff import Lease


class WriteJob(EntryJobType[Item, Done], name="bench_write_job"):
    pass


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def profiled(name: str, count: int, top: int, body: Callable[[], Awaitable[None]]) -> None:
    profile = cProfile.Profile()
    cpu, wall = cpu_seconds(), time.perf_counter()
    profile.enable()
    await body()
    profile.disable()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    stats = pstats.Stats(profile, stream=io.StringIO())
    idle = sum(
        entry[2]
        for func, entry in stats.stats.items()  # type: ignore[attr-defined]
        if func[2]
        in (
            "<method 'poll' of 'select.epoll' objects>",
            "<method 'select' of 'select.kqueue' objects>",
        )
    )
    print(f"\n== {name}: {count:,} in {wall:.2f} s under the profiler")
    print(
        f"   {wall / count * 1e6:.0f} us wall and {cpu / count * 1e6:.0f} us CPU per item; "
        f"event loop idle in select {idle / wall:.0%} of the time"
    )
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(top)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("ncalls"))
    print("\n".join(lines[start:]))


async def run(dsn: str, chains: int, top: int) -> None:
    state = await open_state_adapter(dsn)
    await state.migrate()
    countdown = Countdown(chains)
    client: Client[Any] = Client(
        state,
        job_types=[BenchJob, WriteJob],
        notify=InProcessNotifyAdapter(),
        observability=countdown,
    )

    async def one_by_one() -> None:
        for i in range(chains):
            async with client.transaction() as tx:
                await client.start_chain(BenchJob(Item(i)), tx=tx)

    async def batches() -> None:
        for offset in range(0, chains, 100):
            async with client.transaction() as tx:
                await client.start_chains(
                    [BenchJob(Item(i)) for i in range(offset, min(offset + 100, chains))], tx=tx
                )

    async def batches_alone() -> None:
        for offset in range(0, chains, 100):
            await client.start_chains(
                [BenchJob(Item(i)) for i in range(offset, min(offset + 100, chains))]
            )

    worker: Worker[Any] = Worker(client, concurrency=10, poll_interval=1.0, lease=Lease(60, 30))

    @worker.handler(BenchJob)
    async def noop(attempt: Attempt[BenchJob]) -> Done:
        return Done(True)  # the worker's group commit writes it

    async def process() -> None:
        await worker.start()
        await countdown.done.wait()

    # The start phases leave 3 * chains jobs; processing takes the first `chains` of them.
    await profiled("start one by one (a transaction each)", chains, top, one_by_one)
    await profiled("start in batches of 100", chains, top, batches)
    await profiled("start in batches of 100 without a transaction", chains, top, batches_alone)
    await profiled("process, no-op handler (group-committed), concurrency 10", chains, top, process)
    await worker.close()
    if not dsn.startswith("memory"):
        await profile_write_atomic(client, dsn, chains, top)

    steps: list[list[float]] = [[], [], []]
    for i in range(min(chains, 2000)):
        t0 = time.perf_counter()
        block = client.transaction()
        tx = await block.__aenter__()
        t1 = time.perf_counter()
        await client.start_chain(BenchJob(Item(i)), tx=tx)
        t2 = time.perf_counter()
        await block.__aexit__(None, None, None)
        t3 = time.perf_counter()
        for step, seconds in zip(steps, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            step.append(seconds * 1e6)
    print("\n== one-chain transaction, without the profiler: median us per step")
    for label, step in zip(
        ("enter client.transaction()", "start_chain", "leave the block (commit, side effects)"),
        steps,
        strict=True,
    ):
        print(f"   {label:<42}{statistics.median(step):>8.0f}")
    await client.close()
    await state.close()


async def profile_write_atomic(client: Client[Any], dsn: str, chains: int, top: int) -> None:
    """bench.py's ``write-atomic``: ``prepare("atomic", insert)``, one row of the handler's own
    committed with the completion, on jobs of a type of their own started beforehand."""
    writer = RowWriter(dsn)
    await writer.create()
    for offset in range(0, chains, 100):
        async with client.transaction() as tx:
            await client.start_chains(
                [WriteJob(Item(i)) for i in range(offset, min(offset + 100, chains))], tx=tx
            )
    finished = asyncio.Event()
    done = 0
    worker: Worker[Any] = Worker(client, concurrency=10, poll_interval=1.0, lease=Lease(60, 30))

    @worker.handler(WriteJob)
    async def write_atomic(attempt: Attempt[WriteJob]) -> Done:
        nonlocal done

        async def insert(ctx: TxContext[Any]) -> None:
            await writer.insert(ctx.tx, attempt.job.id, attempt.input.index)

        await attempt.prepare("atomic", insert)
        done += 1
        if done == chains:
            finished.set()
        return Done(True)

    async def process() -> None:
        await worker.start()
        await finished.wait()

    await profiled("process, write-atomic (a row in the job's transaction)", chains, top, process)
    await worker.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="sqlite:////tmp/queuert-profile.db")
    parser.add_argument("--chains", type=int, default=5000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    dsn = isolated_dsn(args.dsn, uuid.uuid4().hex[:10])
    try:
        asyncio.run(run(dsn, args.chains, args.top))
    finally:
        remove_sqlite_files(dsn)
        asyncio.run(drop_backend(dsn))


if __name__ == "__main__":
    main()
