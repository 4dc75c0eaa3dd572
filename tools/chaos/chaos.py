"""queuert chaos run: several worker processes on one PostgreSQL schema while workers are SIGKILLed,
their connections terminated and (optionally) the server restarted; then a check that every chain
completed and every job's side effect was committed exactly once.

    uv run python tools/chaos/chaos.py run --dsn postgresql://postgres@127.0.0.1:5432/test
    uv run python tools/chaos/chaos.py run --dsn ... --workers 4 --chains 500 --duration 60 \\
        --restart-command "pg_ctl -D /path/to/private/cluster restart -m immediate"

The workload mixes two-step chains (a job that continues to another) and fan-in chains (a job
blocked by several leaf chains). Every handler writes its side effect (one row per job) in the
transaction that completes the job, so a completion that commits twice, or a side effect without
its completion, shows as a count other than one. ``--restart-command`` restarts the server during
the run: give it only a private instance. The report says how many attempts were re-runs (started
again after a kill) and how long the queue took to drain once the chaos stopped. The exit status is
0 when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from queuert import (
    Attempt,
    Backoff,
    Blockers,
    Chain,
    Client,
    Continues,
    EntryJobType,
    JobType,
    Lease,
    TxContext,
    Worker,
)
from queuert_postgres import PgNotifyAdapter, PgStateAdapter
from typing_extensions import Never

APP = "queuert-chaos"
"""The application_name of the workers' connections (the connections the chaos terminates)."""


@dataclass
class N:
    value: int


class Begin(EntryJobType[N, Never], Continues["Finish"], name="chaos_begin"):
    """First step of a two-step chain."""


class Finish(JobType[N, N], name="chaos_finish"):
    """Second step."""


class Leaf(EntryJobType[N, N], name="chaos_leaf"):
    """A blocker chain of one job."""


class Join(EntryJobType[N, N], Blockers[tuple[Chain[Leaf], ...]], name="chaos_join"):
    """Runs once its leaf chains completed; sums them."""


JOB_TYPES: list[type[JobType[Any, Any]]] = [Begin, Finish, Leaf, Join]


# -- the worker process -------------------------------------------------------------------------


async def run_worker(args: argparse.Namespace) -> None:
    state = await PgStateAdapter.connect(
        args.dsn,
        schema=args.schema,
        max_size=args.concurrency + 4,
        server_settings={"application_name": APP},
    )
    notify = PgNotifyAdapter(args.dsn, channel_prefix=args.schema)
    client: Client[Any] = Client(state, job_types=JOB_TYPES, notify=notify)
    effects = f'"{args.schema}".chaos_effect'

    def effect(job_id: str, result: Any) -> Any:
        async def write(ctx: TxContext[Any]) -> Any:
            await ctx.tx.execute(f"INSERT INTO {effects} (job_id) VALUES ($1)", job_id)
            return result

        return write

    async def work() -> None:
        await asyncio.sleep(random.uniform(0.0, args.job_seconds))

    async def begin(attempt: Attempt[Begin]) -> None:
        await work()
        await attempt.complete(effect(attempt.job.id, Finish(N(attempt.input.value))))

    async def finish(attempt: Attempt[Finish]) -> None:
        await work()
        await attempt.complete(effect(attempt.job.id, N(attempt.input.value + 1)))

    async def leaf(attempt: Attempt[Leaf]) -> None:
        await work()
        await attempt.complete(effect(attempt.job.id, N(attempt.input.value)))

    async def join(attempt: Attempt[Join]) -> None:
        await work()
        total = attempt.input.value + sum(chain.output.value for chain in attempt.blockers)
        await attempt.complete(effect(attempt.job.id, N(total)))

    worker: Worker[Any] = Worker(
        client,
        name=args.name,
        concurrency=args.concurrency,
        handlers={Begin: begin, Finish: finish, Leaf: leaf, Join: join},
        poll_interval=0.5,
        lease=Lease(duration=args.lease, renew_every=args.lease / 4),
        reap_interval=args.lease / 4,
        backoff=Backoff(initial=0.05, maximum=0.5),
        recovery_backoff=Backoff(initial=0.05, maximum=0.5),
    )
    try:
        await worker.run()
    finally:
        await client.close()
        await notify.close()
        await state.close()


# -- the controller -----------------------------------------------------------------------------


@dataclass
class Tally:
    kills: int = 0
    terminated: int = 0
    restarts: int = 0


def spawn(args: argparse.Namespace, schema: str, index: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        __file__,
        "worker",
        "--dsn",
        args.dsn,
        "--schema",
        schema,
        "--name",
        f"chaos-{index}",
        "--concurrency",
        str(args.concurrency),
        "--lease",
        str(args.lease),
        "--job-seconds",
        str(args.job_seconds),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


async def start_workload(
    client: Client[Any], chains: int, rng: random.Random, over: float, ids: list[str]
) -> None:
    """Start ``chains`` chains in batches of 10 spread over ``over`` seconds (a third fan-in, the
    rest two-step), adding their ids to ``ids``; a batch that fails (the server restarting) is
    tried again."""
    batches = range(0, chains, 10)
    pause = over / max(len(batches), 1)
    for offset in batches:
        while True:
            try:
                ids += await _start_batch(client, offset, min(offset + 10, chains), rng)
                break
            except Exception:
                await asyncio.sleep(0.2)
        await asyncio.sleep(pause)


async def _start_batch(client: Client[Any], first: int, end: int, rng: random.Random) -> list[str]:
    ids: list[str] = []
    async with client.transaction() as tx:
        for i in range(first, end):
            if i % 3 == 0:
                leaves = await client.start_chains(
                    [Leaf(N(k)) for k in range(rng.randint(1, 3))], tx=tx
                )
                ids += [leaf.id for leaf in leaves]
                join = await client.start_chain(Join(N(i), blockers=tuple(leaves)), tx=tx)
                ids.append(join.id)
            else:
                ids.append((await client.start_chain(Begin(N(i)), tx=tx)).id)
    return ids


async def chaos(
    args: argparse.Namespace,
    schema: str,
    workers: list[subprocess.Popen[bytes]],
    rng: random.Random,
    tally: Tally,
) -> None:
    """Kill, terminate and restart at random until ``--duration`` has passed."""
    loop = asyncio.get_running_loop()
    end = loop.time() + args.duration
    next_kill = loop.time() + rng.uniform(0, 2 * args.kill_every)
    next_terminate = loop.time() + rng.uniform(0, 2 * args.terminate_every)
    next_restart = loop.time() + args.restart_every if args.restart_command else float("inf")
    while loop.time() < end:
        now = loop.time()
        if now >= next_kill:
            index = rng.randrange(len(workers))
            workers[index].send_signal(signal.SIGKILL)
            workers[index].wait()
            workers[index] = spawn(args, schema, len(workers) + tally.kills)
            tally.kills += 1
            next_kill = now + rng.uniform(0.5, 1.5) * args.kill_every
        if now >= next_terminate:
            with contextlib.suppress(Exception):
                conn = await asyncpg.connect(args.dsn)
                try:
                    tally.terminated += await conn.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE application_name = $1 AND random() < 0.3",
                        APP,
                    )
                finally:
                    await conn.close()
            next_terminate = now + rng.uniform(0.5, 1.5) * args.terminate_every
        if now >= next_restart:
            # its output goes to stderr: stdout carries the report alone
            await asyncio.to_thread(
                subprocess.run, args.restart_command, shell=True, check=False, stdout=sys.stderr
            )
            tally.restarts += 1
            next_restart = now + args.restart_every
        await asyncio.sleep(0.05)


async def drain(client: Client[Any], timeout: float) -> float | None:
    """Seconds until no job is open, or None after ``timeout``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < timeout:
        with contextlib.suppress(Exception):  # the server may still be coming back
            page = await client.list_jobs(
                statuses=["ready", "scheduled", "running", "blocked"], limit=1
            )
            if not page.items:
                return loop.time() - started
        await asyncio.sleep(0.2)
    return None


async def verify(dsn: str, schema: str, ids: list[str]) -> dict[str, Any]:
    """Every chain completed, every job closed, each completed job's effect committed once."""
    conn = await asyncpg.connect(dsn)
    try:
        job = f'"{schema}".queuert_job'
        rows = await conn.fetch(
            f"SELECT j.id::text AS id, j.outcome, j.attempt, j.succeeded_by_job_id IS NOT NULL AS"
            f' continued, (SELECT count(*) FROM "{schema}".chaos_effect e WHERE e.job_id = j.id)'
            f" AS effects FROM {job} j"
        )
    finally:
        await conn.close()
    by_id = {row["id"]: row for row in rows}
    open_jobs = [r["id"] for r in rows if r["outcome"] is None]
    not_completed = [r["id"] for r in rows if r["outcome"] not in (None, "completed")]
    effects_wrong = [r["id"] for r in rows if r["outcome"] == "completed" and r["effects"] != 1]
    lost_chains = [i for i in ids if i not in by_id]
    attempts = sum(r["attempt"] for r in rows)
    return {
        "chains": len(ids),
        "jobs": len(rows),
        "attempts": attempts,
        "re_runs": attempts - len(rows),
        "open_jobs": open_jobs[:10],
        "not_completed": not_completed[:10],
        "effects_not_exactly_once": effects_wrong[:10],
        "lost_chains": lost_chains[:10],
        "ok": not (open_jobs or not_completed or effects_wrong or lost_chains),
    }


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    schema = f"chaos_{uuid.uuid4().hex[:10]}"
    state = await PgStateAdapter.connect(args.dsn, schema=schema)
    client: Client[Any] = Client(state, job_types=JOB_TYPES)
    tally = Tally()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        await state.migrate()
        conn = await asyncpg.connect(args.dsn)
        try:
            await conn.execute(f'CREATE TABLE "{schema}".chaos_effect (job_id uuid NOT NULL)')
        finally:
            await conn.close()
        ids: list[str] = []
        workers = [spawn(args, schema, i) for i in range(args.workers)]
        started = time.monotonic()
        producing = asyncio.ensure_future(
            start_workload(client, args.chains, rng, args.duration * 0.8, ids)
        )
        try:
            await chaos(args, schema, workers, rng, tally)
            await producing
        finally:
            producing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producing
        drained = await drain(client, args.drain_timeout)
        report = await verify(args.dsn, schema, ids)
        report.update(
            kills=tally.kills,
            connections_terminated=tally.terminated,
            server_restarts=tally.restarts,
            chaos_seconds=round(time.monotonic() - started - (drained or 0), 1),
            drain_seconds=None if drained is None else round(drained, 2),
        )
        report["ok"] = report["ok"] and drained is not None
        print(json.dumps(report, indent=2))
        return 0 if report["ok"] else 1
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        await client.close()
        if not args.keep:
            conn = await asyncpg.connect(args.dsn)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
        await state.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="run the chaos and check the outcome")
    go.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    go.add_argument("--workers", type=int, default=3)
    go.add_argument("--concurrency", type=int, default=4)
    go.add_argument("--chains", type=int, default=300, help="started during the chaos")
    go.add_argument("--duration", type=float, default=30.0, help="seconds of chaos")
    go.add_argument("--kill-every", type=float, default=3.0, help="mean seconds between SIGKILLs")
    go.add_argument("--terminate-every", type=float, default=2.0)
    go.add_argument("--restart-command", default=None, help="restarts a PRIVATE server")
    go.add_argument("--restart-every", type=float, default=10.0)
    go.add_argument("--lease", type=float, default=2.0)
    go.add_argument("--job-seconds", type=float, default=0.05)
    go.add_argument("--drain-timeout", type=float, default=60.0)
    go.add_argument("--seed", type=int, default=None)
    go.add_argument("--keep", action="store_true", help="keep the schema for inspection")
    work = sub.add_parser("worker", help=argparse.SUPPRESS)
    work.add_argument("--dsn", required=True)
    work.add_argument("--schema", required=True)
    work.add_argument("--name", required=True)
    work.add_argument("--concurrency", type=int, default=4)
    work.add_argument("--lease", type=float, default=2.0)
    work.add_argument("--job-seconds", type=float, default=0.05)
    args = parser.parse_args()
    if args.command == "worker":
        asyncio.run(run_worker(args))
    else:
        sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
