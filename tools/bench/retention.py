"""Retention's speed on PostgreSQL, alone and while a worker processes new jobs, and what it costs
that processing.

    uv run python tools/bench/retention.py --dsn postgresql://postgres@127.0.0.1:5432/test --runs 3 \\
        --layout partitioned

Each round fills a fresh schema with ``--expired`` closed one-job chains (closed 100 days ago, by
set-based SQL), then measures, in fresh child processes:

* ``processing``: ``--chains`` chains started in batches of 100 and processed by a worker at
  concurrency 10 (``noop`` handler), no retention;
* ``retention``: a worker with ``Retention(closed_for=1 day)`` deleting the expired chains (one run,
  ``--batch`` chains per transaction), nothing else: jobs deleted per second;
* ``both``: the two at once in one process, a worker each.

``--layout partitioned``: each schema is filled unpartitioned, then moved with
``migrate_to_partitioned()`` (daily partitions; the expired chains land in the history partition),
so retention drops that partition instead of deleting rows. That partition ends at the start of
today (UTC), so the runs' ``closed_for`` is the time since then, less a minute, instead of a day.
``--counts estimated``: the dropped partition is not counted but estimated from the catalog.

Reports medians (and the range): the deletion rate, and the processing rate with retention running
against without it, both as the ratio of the medians and round by round (each round's ``both``
against the same round's ``processing``, which shared the machine's load at the time), with how
long retention ran within the processing it overlapped and the load average of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
from bench import BenchJob, Done, Item, run_in_child, uuid7_sql
from queuert import Attempt, Client, InProcessNotifyAdapter, Retention, Worker
from queuert.backends import open_state_adapter
from queuert.backoff import Lease
from queuert.observability import AttemptCompleted, ChainsExpired, Event

PREFIX = "queuert_"


def fill_sql(schema: str, count: int) -> str:
    job = f'"{schema}"."{PREFIX}job"'
    return f"""
INSERT INTO {job} (id, type_name, chain_id, chain_type_name, chain_index, input, output, outcome,
    created_at, scheduled_at, completed_at, completed_by, attempt, last_attempt_at)
SELECT {uuid7_sql("created", "'r' || i")}, 'expired_job', {uuid7_sql("created", "'r' || i")},
    'expired_job', 0,
    json_build_object('n', i), '"ok"'::json, 'completed',
    created, created, created + interval '1 second', 'worker-0', 1, created
FROM (SELECT i, now() - interval '100 days' + i * interval '1 millisecond' AS created
      FROM generate_series(1, {count}) AS i) g
"""


class Progress:
    """Counts completed attempts (processing) and deleted chains (retention)."""

    def __init__(self, jobs: int, expired: int) -> None:
        self.jobs, self.expired = jobs, expired
        self.processed = asyncio.Event()
        self.cleaned = asyncio.Event()
        self.deleted = 0
        self.first_delete: float | None = None
        self.last_delete = 0.0

    def emit(self, event: Event) -> None:
        if isinstance(event, AttemptCompleted) and event.job.type_name == BenchJob.type_name:
            self.jobs -= 1
            if self.jobs <= 0:
                self.processed.set()
        elif isinstance(event, ChainsExpired):
            now = time.perf_counter()
            self.first_delete = self.first_delete or now
            self.last_delete = now
            self.deleted += event.deleted
            # a dropped partition held them all (its count may be an estimate)
            if self.deleted >= self.expired or event.partitions:
                self.cleaned.set()


async def measure(dsn: str, mode: str, chains: int, expired: int, batch: int) -> dict[str, float]:
    state = await open_state_adapter(dsn)
    await state.migrate()
    progress = Progress(chains if mode != "retention" else 0, expired)
    client: Client[Any] = Client(
        state, job_types=[BenchJob], notify=InProcessNotifyAdapter(), observability=progress
    )
    workers: list[Worker[Any]] = []
    if mode in ("processing", "both"):
        worker: Worker[Any] = Worker(client, concurrency=10, poll_interval=1.0, lease=Lease(60, 30))

        @worker.handler(BenchJob)
        async def noop(attempt: Attempt[BenchJob]) -> Done:
            return Done(True)

        workers.append(worker)
        for offset in range(0, chains, 100):
            jobs = [BenchJob(Item(i)) for i in range(offset, min(offset + 100, chains))]
            async with client.transaction() as tx:
                await client.start_chains(jobs, tx=tx)
    if mode in ("retention", "both"):
        closed_for = timedelta(days=1)
        if "partitioned=true" in dsn:
            # the history partition ends at the start of today (UTC): a cutoff after it, and still
            # before the chains this run processes
            now = datetime.now(timezone.utc)
            today = now.replace(hour=0, minute=0, second=0, microsecond=0)
            closed_for = max(timedelta(minutes=1), now - today - timedelta(minutes=1))
        retention = Retention(
            closed_for=closed_for,
            every=timedelta(hours=1),  # one run: the first tick is started at once
            batch=batch,
            max_per_run=expired * 2,
        )
        workers.append(Worker(client, retention=retention, poll_interval=0.2, lease=Lease(600, 30)))
    began = time.perf_counter()
    for w in workers:
        await w.start()
    result: dict[str, float] = {}
    if mode in ("processing", "both"):
        await progress.processed.wait()
        result["process_s"] = time.perf_counter() - began
        result["process_per_s"] = chains / result["process_s"]
    if mode in ("retention", "both"):
        await progress.cleaned.wait()
        # until the batch that completed the deletion (in ``both``, processing may end later)
        elapsed = progress.last_delete - began
        result["deleted_per_s"] = expired / elapsed
        result["retention_s"] = elapsed
    for w in workers:
        await w.close()
    await client.close()
    await state.close()
    return result


async def fill(dsn: str, schema: str, count: int, layout: str) -> None:
    state = await open_state_adapter(f"{dsn}?schema={schema}")
    try:
        await state.migrate()
    finally:
        await state.close()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(fill_sql(schema, count))
        if layout == "partitioned":
            moving = await open_state_adapter(f"{dsn}?schema={schema}&partitioned=true")
            try:
                await moving.migrate_to_partitioned()  # type: ignore[attr-defined]
            finally:
                await moving.close()
        await conn.execute(f'VACUUM ANALYZE "{schema}"."{PREFIX}job"')
    finally:
        await conn.close()


async def drop(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def child(payload: dict[str, Any]) -> dict[str, float]:
    return run_in_child(__file__, [json.dumps(payload)], "retention run")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        print(json.dumps(asyncio.run(measure(**json.loads(sys.argv[2])))))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chains", type=int, default=5000)
    parser.add_argument("--expired", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--layout", choices=("plain", "partitioned"), default="plain")
    parser.add_argument(
        "--counts",
        choices=("exact", "estimated"),
        default="exact",
        help="how a dropped partition is counted (partitioned layout: Partitioning(counts=...))",
    )
    args = parser.parse_args()
    extra = (
        f"&partitioned=true&partition_counts={args.counts}" if args.layout == "partitioned" else ""
    )
    print(
        f"queuert bench: retention, {args.layout} layout"
        f"{f' ({args.counts} counts)' if args.layout == 'partitioned' else ''}, "
        f"{args.expired:,} expired chains, "
        f"batches of {args.batch}; "
        f"{args.runs} rounds, medians (min..max)",
        flush=True,
    )
    results: dict[str, list[dict[str, float]]] = {"processing": [], "retention": [], "both": []}
    ratios: list[float] = []
    for run in range(args.runs):
        load = os.getloadavg()[0]
        for mode in results:
            schema = f"bench_retention_{uuid.uuid4().hex[:8]}"
            asyncio.run(fill(args.dsn, schema, args.expired, args.layout))
            try:
                payload = {
                    "dsn": f"{args.dsn}?schema={schema}{extra}",
                    "mode": mode,
                    "chains": args.chains,
                    "expired": args.expired,
                    "batch": args.batch,
                }
                results[mode].append(child(payload))
            finally:
                asyncio.run(drop(args.dsn, schema))
        solo, paired = results["processing"][-1], results["both"][-1]
        ratios.append(paired["process_per_s"] / solo["process_per_s"])
        print(
            f"  round {run + 1}: processing {solo['process_per_s']:,.0f} jobs/s alone, "
            f"{paired['process_per_s']:,.0f} with retention ({ratios[-1]:.2f}); processing took "
            f"{paired['process_s']:.2f} s, retention {paired['retention_s']:.2f} s of it; "
            f"load average {load:.1f} -> {os.getloadavg()[0]:.1f}",
            flush=True,
        )

    def cell(mode: str, key: str) -> str:
        values = [r[key] for r in results[mode]]
        return f"{statistics.median(values):,.0f} ({min(values):,.0f}..{max(values):,.0f})"

    print(f"processing alone, jobs/s:            {cell('processing', 'process_per_s')}")
    print(f"processing with retention, jobs/s:   {cell('both', 'process_per_s')}")
    print(f"retention alone, chains deleted/s:   {cell('retention', 'deleted_per_s')}")
    print(f"retention while processing, chains/s: {cell('both', 'deleted_per_s')}")
    alone = statistics.median(r["process_per_s"] for r in results["processing"])
    both = statistics.median(r["process_per_s"] for r in results["both"])
    print(f"processing with retention / alone:   {both / alone:.2f} (ratio of the medians)")
    print(
        f"same, round by round:                {statistics.median(ratios):.2f} "
        f"({min(ratios):.2f}..{max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
