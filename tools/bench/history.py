"""Processing and claim latency on PostgreSQL with a long history of closed jobs in the job table.

    uv run python tools/bench/history.py --dsn postgresql://postgres@127.0.0.1:5432/test \\
        --history 0,100000,1000000 --runs 3

For each history size a schema ``bench_history_<size>`` holds that many closed jobs (completed
chains, one in ten of two jobs, created over the last 90 days), filled once by set-based SQL
(``INSERT ... SELECT generate_series``) and kept for later runs (``--rebuild`` refills them,
``--drop`` drops them at the end); each round's own jobs are deleted after it. Each
round then runs, size after size so that drift hits all alike: ``bench.py``'s processing run (start
``--chains`` chains in batches of 100, process them with one worker at concurrency 10, ``noop``
handler) and its latency run (single jobs started one at a time against an idle worker, from commit
to the handler's start), both in that schema. Reports medians (and the range) per size and the
ratio to the smallest size: how much the history slows the hot paths.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time

import asyncpg
from bench import run_in_child, run_latency, run_processing
from queuert.backends import open_state_adapter

PREFIX = "queuert_"


def schema_of(size: int) -> str:
    return f"bench_history_{size}"


def fill_sql(schema: str, size: int) -> str:
    """``size`` closed jobs: completed chains created over 90 days, one in ten of two jobs."""
    job = f'"{schema}"."{PREFIX}job"'
    return f"""
INSERT INTO {job} (id, type_name, chain_id, chain_type_name, chain_index, input, output, outcome,
    succeeded_by_job_id, created_at, scheduled_at, completed_at, completed_by, attempt,
    last_attempt_at)
SELECT
    md5('h' || i)::uuid,
    CASE WHEN second THEN 'history_ship' ELSE 'history_place' END,
    CASE WHEN second THEN md5('h' || (i - 1))::uuid ELSE md5('h' || i)::uuid END,
    'history_place',
    CASE WHEN second THEN 1 ELSE 0 END,
    json_build_object('n', i),
    CASE WHEN first THEN NULL ELSE '"ok"'::json END,
    'completed',
    CASE WHEN first THEN md5('h' || (i + 1))::uuid END,
    created, created, created + interval '1 second', 'worker-' || (i % 8), 1, created
FROM (
    SELECT i, i % 10 = 1 AS first, i % 10 = 2 AS second,
        now() - interval '90 days' + i * (interval '90 days' / {max(size, 1)}) AS created
    FROM generate_series(1, {size}) AS i
) g
"""


async def ensure_history(dsn: str, size: int, rebuild: bool) -> None:
    schema = schema_of(size)
    conn = await asyncpg.connect(dsn)
    try:
        if rebuild:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        exists = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema
        )
        if exists:
            have = await conn.fetchval(
                f'SELECT count(*) FROM "{schema}"."{PREFIX}job" WHERE outcome IS NOT NULL'
            )
            if have >= size:
                print(f"reusing {schema} ({have:,} closed jobs)", flush=True)
                return
            raise SystemExit(f"{schema} holds {have:,} closed jobs, not {size:,}: pass --rebuild")
    finally:
        await conn.close()
    state = await open_state_adapter(f"{dsn}?schema={schema}")
    try:
        await state.migrate()
    finally:
        await state.close()
    conn = await asyncpg.connect(dsn)
    try:
        began = time.perf_counter()
        if size:
            await conn.execute(fill_sql(schema, size))
        await conn.execute(f'VACUUM ANALYZE "{schema}"."{PREFIX}job"')
        print(f"filled {schema}: {size:,} jobs in {time.perf_counter() - began:.1f} s", flush=True)
    finally:
        await conn.close()


async def forget_runs(dsn: str, size: int) -> None:
    """Delete the jobs a round added, so that every round sees the same history."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f'DELETE FROM "{schema_of(size)}"."{PREFIX}job" WHERE type_name = $1', "bench_job"
        )
    finally:
        await conn.close()


async def drop_history(dsn: str, sizes: list[int]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for size in sizes:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_of(size)}" CASCADE')
    finally:
        await conn.close()


def child(kind: str, payload: dict[str, object]) -> dict[str, float]:
    return run_in_child(__file__, [kind, json.dumps(payload)], "history run")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        kind, payload = sys.argv[2], json.loads(sys.argv[3])
        if kind == "processing":
            result = asyncio.run(run_processing(**payload))
        else:
            result = asyncio.run(run_latency(**payload))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--history", default="0,100000,1000000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chains", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--drop", action="store_true", help="drop the history schemas at the end")
    args = parser.parse_args()
    sizes = [int(s) for s in args.history.split(",")]
    print(
        f"queuert bench: history, python {platform.python_version()} on {platform.machine()}; "
        f"{args.runs} rounds, medians (min..max)",
        flush=True,
    )
    for size in sizes:
        asyncio.run(ensure_history(args.dsn, size, args.rebuild))
    processing: dict[int, list[float]] = {size: [] for size in sizes}
    latency: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(args.runs):
        for size in sizes:
            dsn = f"{args.dsn}?schema={schema_of(size)}"
            run = child(
                "processing",
                {
                    "dsn": dsn,
                    "chains": args.chains,
                    "start_mode": "batch",
                    "process_mode": "noop",
                    "notify": "in_process",
                },
            )
            processing[size].append(run["process_per_s"])
            waited = child("latency", {"dsn": dsn, "samples": args.samples, "notify": "in_process"})
            latency[size].append(waited["median_ms"])
            asyncio.run(forget_runs(args.dsn, size))
    base = sizes[0]
    print(
        f"{'closed jobs':>12}{'process jobs/s':>18}{'claim latency ms':>20}   (ratio to {base:,})"
    )
    for size in sizes:
        p, q = statistics.median(processing[size]), statistics.median(latency[size])
        print(
            f"{size:>12,}{p:>18,.0f}{q:>20.2f}   ({p / statistics.median(processing[base]):.2f}, "
            f"{q / statistics.median(latency[base]):.2f}; "
            f"{min(processing[size]):,.0f}..{max(processing[size]):,.0f} / "
            f"{min(latency[size]):.2f}..{max(latency[size]):.2f})"
        )
    if args.drop:
        asyncio.run(drop_history(args.dsn, sizes))


if __name__ == "__main__":
    main()
