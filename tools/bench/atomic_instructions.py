"""Instructions per exactly-once job under callgrind, in a deterministic loop with no worker loop.

    uv run python tools/bench/atomic_instructions.py --dsn postgresql://postgres@127.0.0.1/test
    uv run python tools/bench/atomic_instructions.py --dsn ... --base ../base-checkout --repeat 3

``worker_instructions.py --handler write-atomic`` counts the whole worker, whose claims vary in size
from run to run with the timing of the handlers (5-10% between runs). This tool takes the worker's
loop out: a process claims ``--claim`` jobs at a time (10, as a worker at concurrency 10 would) and
runs each claimed job's attempt through the worker's own attempt code, one after another (with
``--together``, a claim's attempts run concurrently, each in its task, as the worker runs them): the
handler of bench.py's ``write-atomic`` (``prepare("atomic", insert)``: one row of its own in the
job's transaction), the completion written in that transaction, the commit and what the commit
publishes. The same jobs, claims and statements every run: the count moves only with the code.

For each checkout (this one, and ``--base`` if given) and each of two sizes (``--jobs`` and twice as
many), a process of its own starts the jobs in batches, then a second one runs the loop under
``valgrind --tool=callgrind``; the instructions of the smaller run subtracted from those of the
larger, divided by the difference in jobs, are the instructions per job (imports, connecting and
closing cancel out). ``--repeat`` runs each pair that many times, alternating the checkouts; the
medians are printed. The loop is this file's, run with each checkout's code. ``--floor`` counts
bench.py's floor of ``write-atomic`` instead (the driver alone: ``BEGIN``, the ``INSERT``, the
``UPDATE`` of a job row, ``COMMIT``; one connection, or ``--claim`` of them with ``--together``).
``--layer`` builds the exactly-once transaction up from the bare driver on the adapter's pool to
the attempt, one layer at a time (``driver``, ``provider``, ``transactions``, ``state``,
``attempt``: see :func:`process`), to show what each layer costs per job.
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


LAYERS = ("driver", "provider", "transactions", "state", "attempt")
"""What the loop runs per claimed job, from the bare driver up to the worker's attempt code (see
:func:`process`)."""


async def process(
    dsn: str, jobs: int, notify: str, claim: int, together: bool, layer: str = "attempt"
) -> None:
    """Claim ``claim`` jobs at a time and close each with a row of its own in its transaction, by
    ``layer``: ``attempt`` runs the worker's attempt code with bench.py's ``write-atomic`` handler;
    the others build that transaction up without it, each adding one layer to the one before:
    ``driver`` (a connection of the adapter's pool held throughout: ``BEGIN``, the handler's
    ``INSERT``, the adapter's one-job completion statement, ``COMMIT``), ``provider`` (the
    provider's ``transaction()`` and ``fetch``), ``transactions`` (the core's bound transaction
    with its hooks) and ``state`` (the state adapter's ``complete_jobs`` and what the close
    announces, buffered in the hooks). The claims are the same in every layer."""
    from bench import BenchJob, Done, RowWriter, open_backend
    from queuert import Attempt, Client, TxContext, Worker
    from queuert.backoff import Lease
    from queuert.state import Completion
    from queuert.worker import _Running

    state, notifier = await open_backend(dsn, notify)
    client: Client[Any] = Client(state, job_types=[BenchJob], notify=notifier)
    worker: Worker[Any] = Worker(client, concurrency=claim, poll_interval=1.0, lease=Lease(60, 30))
    writer = RowWriter(dsn)

    @worker.handler(BenchJob)
    async def write_atomic(attempt: Attempt[BenchJob]) -> Done:
        async def insert(ctx: TxContext[Any]) -> None:
            await writer.insert(ctx.tx, attempt.job.id, attempt.input.index)

        await attempt.prepare("atomic", insert)
        return Done(True)

    core = worker._core
    config = worker._configs[BenchJob.type_name]
    leases = {BenchJob.type_name: config.lease.duration}
    provider = state.provider
    sql = state.sql.complete_one_plain_claimed
    if layer == "driver" and together:
        raise SystemExit("--layer driver holds one connection: one job at a time")
    held = await provider.pool.acquire() if layer == "driver" else None

    async def close_one(job: Any, n: int) -> None:
        checked = core.finishing.check_result(job, Done(True))
        completion = Completion(
            job.id, output=checked.output, output_text=checked.output_text, claimed=job
        )
        if layer == "state":
            async with core.transactions.transaction() as bound:
                await writer.insert(bound.tx, job.id, n)
                (closed,) = await core.state.complete_jobs(
                    (completion,), worker_id=worker.id, owner=worker.id, tx=bound.tx
                )
                assert closed is not None
                core.finishing.after_close(closed, worker_id=worker.id, hooks=bound.hooks)
            return
        args = state._completion_args(completion, worker.id, worker.id)
        if layer == "transactions":
            async with core.transactions.transaction() as bound:
                await writer.insert(bound.tx, job.id, n)
                assert await provider.fetch(sql, args, bound.tx)
        elif layer == "provider":
            async with provider.transaction() as conn:
                await writer.insert(conn, job.id, n)
                assert await provider.fetch(sql, args, conn)
        else:
            assert held is not None
            await held.execute("BEGIN")
            await writer.insert(held, job.id, n)
            assert await held.fetch(sql.text, *args)
            await held.execute("COMMIT")

    done = 0
    while done < jobs:
        claimed = await state.claim_jobs(leases=leases, limit=claim, worker_id=worker.id)
        assert claimed.jobs, "every job is claimed once"
        if layer != "attempt":
            closes = [close_one(job, done + i) for i, job in enumerate(claimed.jobs)]
            if together:
                await asyncio.gather(*closes)
            else:
                for close in closes:
                    await close
            done += len(closes)
            continue
        runs = []
        for job in claimed.jobs:
            running = _Running(job, config)
            worker._running[job.id] = running
            worker._busy += 1
            runs.append(running)
        if together:
            tasks = [asyncio.ensure_future(worker._run_attempt(running)) for running in runs]
            for running, task in zip(runs, tasks, strict=True):
                running.task = task
            await asyncio.gather(*tasks)
        else:
            for running in runs:
                await worker._run_attempt(running)
        done += len(runs)
    if held is not None:
        await provider.pool.release(held)
    await client.wait_published()
    remaining = await client.list_jobs(
        type_names=[BenchJob], statuses=["ready", "running", "scheduled"], limit=1
    )
    assert not remaining.items, "every job was processed"
    rows = await writer.count(client)
    assert rows == jobs, f"{rows} rows written for {jobs} jobs: each exactly once"
    await client.close()
    await notifier.close()
    await state.close()


async def floor(dsn: str, jobs: int, claim: int, together: bool) -> None:
    from bench import run_floor

    await run_floor(dsn, jobs, concurrency=claim if together else 1)


def instructions(
    checkout: Path,
    dsn: str,
    jobs: int,
    notify: str,
    claim: int,
    together: bool,
    alone: bool,
    layer: str,
) -> int:
    from bench import drop_backend, isolated_dsn

    own = isolated_dsn(dsn, uuid.uuid4().hex[:10])
    python = python_of(checkout)
    env = dict(os.environ, PYTHONPATH=str(checkout / "tools" / "bench"))
    seeder = str(HERE.parent / "worker_instructions.py")
    try:
        if not alone:
            seed = [seeder, "--seed", "--dsn", own, "--jobs", str(jobs)]
            subprocess.run([python, *seed, "--handler", "write-atomic"], check=True, env=env)
        command = [python, str(HERE), "--process", "--dsn", own, "--jobs", str(jobs)]
        command += ["--notify", notify, "--claim", str(claim)]
        command += ["--together"] * together + ["--floor"] * alone
        if layer != "attempt":
            command += ["--layer", layer]
        return count(command, env)
    finally:
        asyncio.run(drop_backend(own))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--notify", default="in_process")
    parser.add_argument("--claim", type=int, default=10)
    parser.add_argument("--together", action="store_true")
    parser.add_argument("--floor", action="store_true")
    parser.add_argument("--layer", choices=LAYERS, default="attempt")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--base", type=Path, default=None)
    parser.add_argument("--process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.process and args.floor:
        asyncio.run(floor(args.dsn, args.jobs, args.claim, args.together))
        return
    if args.process:
        asyncio.run(
            process(args.dsn, args.jobs, args.notify, args.claim, args.together, args.layer)
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
            args.claim,
            args.together,
            args.floor,
            args.layer,
        ),
        unit="job",
    )


if __name__ == "__main__":
    main()
