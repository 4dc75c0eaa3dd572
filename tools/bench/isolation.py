"""Per-job overhead of process isolation (``worker.isolated``) against the same no-op handler run in
the worker's process, with a warm pool.

    uv run python tools/bench/isolation.py --runs 5 --jobs 2000

Two workloads, each measured with the handler in-process (staged mode, like an isolated handler) and
isolated, alternating in one session, on the in-memory store (so the figures are queuert's and the
pipe's, not a database's):

* one at a time (concurrency 1): the time per job, start to finish, and the difference per job: the
  latency isolation adds;
* throughput at concurrency 10, with a pool of as many processes as CPUs.

The pool is warmed (its processes started and the handler imported) before the clock starts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any

from queuert import (
    Attempt,
    Client,
    EntryJobType,
    InMemoryStateAdapter,
    InProcessNotifyAdapter,
    IsolatedJob,
    Worker,
)
from queuert.observability import AttemptCompleted, Event


@dataclass
class Item:
    n: int


class Noop(EntryJobType[Item, Item], name="bench_isolation_noop"):
    pass


def noop(job: IsolatedJob[Noop]) -> Item:
    return job.input


class Counter:
    def __init__(self) -> None:
        self.remaining = 0
        self.done = asyncio.Event()

    def expect(self, n: int) -> None:
        self.remaining = n
        self.done.clear()

    def emit(self, event: Event) -> None:
        if isinstance(event, AttemptCompleted):
            self.remaining -= 1
            if self.remaining <= 0:
                self.done.set()


async def measure(isolated: bool, jobs: int, concurrency: int) -> float:
    """Seconds per job."""
    counter = Counter()
    client: Client[Any] = Client(
        InMemoryStateAdapter(),
        job_types=[Noop],
        notify=InProcessNotifyAdapter(),
        observability=counter,
    )
    worker: Worker[Any] = Worker(client, concurrency=concurrency, poll_interval=1.0)
    if isolated:
        processes = min(concurrency, os.cpu_count() or 1)
        worker.isolated(Noop, hard_timeout=30, processes=processes)(noop)
    else:

        @worker.handler(Noop)
        async def in_process(attempt: Attempt[Noop]) -> Item:
            await attempt.prepare("staged")
            return attempt.input

    async def run(count: int) -> float:
        counter.expect(count)
        began = time.perf_counter()
        if concurrency == 1:
            for i in range(count):  # one at a time: each job is started after the previous one
                async with client.transaction() as tx:
                    await client.start_chain(Noop(Item(i)), tx=tx)
                counter.expect(1)
                await counter.done.wait()
        else:
            async with client.transaction() as tx:
                await client.start_chains([Noop(Item(i)) for i in range(count)], tx=tx)
            await counter.done.wait()
        return time.perf_counter() - began

    async with worker:
        await run(max(20, concurrency * 4))  # warm: processes started, handler imported
        elapsed = await run(jobs)
    await client.close()
    return elapsed / jobs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    print(
        f"queuert bench: process isolation, python {platform.python_version()} on "
        f"{platform.machine()}, {os.cpu_count()} cpus; {args.runs} runs, medians (min..max)"
    )
    for concurrency in (1, 10):
        per_job: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.runs):
            for isolated in (False, True):
                per_job[isolated].append(asyncio.run(measure(isolated, args.jobs, concurrency)))
        off, on = (statistics.median(per_job[k]) for k in (False, True))
        print(f"concurrency {concurrency}:")
        for label, key in (("in-process", False), ("isolated", True)):
            values = per_job[key]
            print(
                f"  {label:<11}{statistics.median(values) * 1e6:>9,.0f} us/job "
                f"{1 / statistics.median(values):>9,.0f} jobs/s"
                f"   ({min(values) * 1e6:,.0f}..{max(values) * 1e6:,.0f} us)"
            )
        print(f"  isolation adds {(on - off) * 1e3:.3f} ms per job")


if __name__ == "__main__":
    main()
