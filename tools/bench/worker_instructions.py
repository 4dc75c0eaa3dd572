"""Instructions per processed job under callgrind: the worker's Python cost, free of the machine's load.

    uv run python tools/bench/worker_instructions.py --dsn postgresql://postgres@127.0.0.1/test
    uv run python tools/bench/worker_instructions.py --dsn ... --base ../base-checkout --notify postgres

For each checkout (this one, and ``--base`` if given) and each of two sizes (``--jobs`` and twice as
many), the jobs are started in batches by a process of their own, then a second process runs under
``valgrind --tool=callgrind``: it opens a client, starts a worker at concurrency 10 with a no-op
handler, waits until every job has been processed and closes. The instructions of the smaller run
subtracted from those of the larger, divided by the difference in jobs, are the instructions per
processed job (imports, connecting and closing cancel out). ``--repeat`` runs each pair that many
times; the medians are printed. ``--events`` counts attempts through an observability adapter that
takes every event (bench.py's ``noop``); without it, the client's default (bench.py's ``noop-quiet``).
``--handler write-atomic`` counts the exactly-once path instead of the no-op handler: bench.py's
``write-atomic`` handler inserts one row in the job's own transaction (``prepare("atomic", insert)``)
and the worker closes the job in it (the row table is created by the seeding process).
``--concurrency`` sets the worker's (10; at 1, jobs run one at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from callgrind import count, medians, python_of

HERE = Path(__file__).resolve()


async def seed(dsn: str, jobs: int, handler: str) -> None:
    from bench import BenchJob, Item, RowWriter, open_backend
    from queuert import Client

    state, notifier = await open_backend(dsn, "none")
    if handler == "write-atomic":
        await RowWriter(dsn).create()
    client: Client[Any] = Client(state, job_types=[BenchJob], notify=notifier)
    for offset in range(0, jobs, 100):
        await client.start_chains(
            [BenchJob(Item(i)) for i in range(offset, min(offset + 100, jobs))]
        )
    await client.close()
    await notifier.close()
    await state.close()


async def process(
    dsn: str, jobs: int, notify: str, events: bool, handler: str, concurrency: int
) -> None:
    from bench import BenchJob, Countdown, Done, RowWriter, open_backend
    from queuert import Attempt, Client, TxContext, Worker
    from queuert.backoff import Lease

    state, notifier = await open_backend(dsn, notify)
    countdown = Countdown(jobs) if events else None
    done = countdown.done if countdown is not None else asyncio.Event()
    client: Client[Any] = Client(
        state, job_types=[BenchJob], notify=notifier, observability=countdown
    )
    worker: Worker[Any] = Worker(
        client, concurrency=concurrency, poll_interval=1.0, lease=Lease(60, 30)
    )
    handled = 0

    writer = RowWriter(dsn) if handler == "write-atomic" else None

    def counted() -> None:
        nonlocal handled
        handled += 1
        if handled == jobs and countdown is None:
            done.set()

    if writer is None:

        @worker.handler(BenchJob)
        async def noop(attempt: Attempt[BenchJob]) -> Done:
            counted()
            return Done(True)

    else:
        atomic_writer = writer

        @worker.handler(BenchJob)
        async def write_atomic(attempt: Attempt[BenchJob]) -> Done:
            async def insert(ctx: TxContext[Any]) -> None:
                await atomic_writer.insert(ctx.tx, attempt.job.id, attempt.input.index)

            await attempt.prepare("atomic", insert)
            counted()
            return Done(True)

    await worker.start()
    await done.wait()
    await worker.close()
    remaining = await client.list_jobs(
        type_names=[BenchJob], statuses=["ready", "running", "scheduled"], limit=1
    )
    assert not remaining.items, "every job was processed"
    if writer is not None:
        rows = await writer.count(client)
        assert rows == jobs, f"{rows} rows written for {jobs} jobs: each exactly once"
    await client.close()
    await notifier.close()
    await state.close()


def instructions(
    checkout: Path, dsn: str, jobs: int, notify: str, events: bool, handler: str, concurrency: int
) -> int:
    from bench import drop_backend, isolated_dsn

    own = isolated_dsn(dsn, uuid.uuid4().hex[:10])
    python = python_of(checkout)
    script = str(checkout / "tools" / "bench" / "worker_instructions.py")
    if not Path(script).exists() or handler != "noop" or concurrency != 10:
        script = str(HERE)  # a base checkout from before this tool or option: ours with its code
    env = dict(os.environ, PYTHONPATH=str(checkout / "tools" / "bench"))
    common = ["--dsn", own, "--jobs", str(jobs), "--handler", handler]
    try:
        subprocess.run([python, script, "--seed", *common], check=True, env=env)
        command = [python, script, "--process", *common, "--notify", notify]
        command += ["--concurrency", str(concurrency), *(["--events"] if events else [])]
        return count(command, env)
    finally:
        asyncio.run(drop_backend(own))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--notify", default="in_process")
    parser.add_argument("--events", action="store_true")
    parser.add_argument("--handler", choices=["noop", "write-atomic"], default="noop")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--base", type=Path, default=None)
    parser.add_argument("--seed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        asyncio.run(seed(args.dsn, args.jobs, args.handler))
        return
    if args.process:
        asyncio.run(
            process(args.dsn, args.jobs, args.notify, args.events, args.handler, args.concurrency)
        )
        return
    sides = [("new", HERE.parents[2])]
    if args.base is not None:
        sides.append(("base", args.base.resolve()))
    medians(
        sides,
        repeat=args.repeat,
        size=args.jobs,
        run=lambda checkout, jobs: instructions(
            checkout,
            args.dsn,
            jobs,
            args.notify,
            args.events,
            args.handler,
            args.concurrency,
        ),
        unit="processed job",
    )


if __name__ == "__main__":
    main()
