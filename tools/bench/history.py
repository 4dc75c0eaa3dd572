"""Processing and claim latency on PostgreSQL with a long history of closed jobs in the job table.

    uv run python tools/bench/history.py --dsn postgresql://postgres@127.0.0.1:5432/test \\
        --history 0,100000,1000000 --layouts plain,partitioned --runs 3

For each history size and layout a schema ``bench_hist_<layout>_<size>`` holds that many closed jobs
(completed chains, one in ten of two jobs, created over the last 90 days, with time-ordered ids as
queuert makes them), filled once by set-based SQL (``INSERT ... SELECT generate_series``) and kept
for later runs (``--rebuild`` refills them, ``--drop`` drops them at the end); each round's own jobs
are deleted after it. The ``partitioned`` layout is filled unpartitioned, then moved with
``migrate_to_partitioned()`` (daily partitions; the history lands in the history partition, as after
the move of a real installation), and the move is timed. Each round then runs, size after size and
layout after layout so that drift hits all alike: ``bench.py``'s processing run (start ``--chains``
chains in batches of 100, process them with one worker at concurrency 10, ``noop`` handler) and its
latency run (single jobs started one at a time against an idle worker, from commit to the handler's
start), both in that schema. Reports medians (and the range) per size and layout, the ratio to the
smallest size of the same layout (how much the history slows the hot paths) and, with both layouts,
partitioned against plain.
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
from bench import run_in_child, run_latency, run_processing, uuid7_sql
from queuert.backends import open_state_adapter

PREFIX = "queuert_"
LAYOUTS = ("plain", "partitioned")


def schema_of(size: int, layout: str = "plain") -> str:
    return f"bench_hist_{'part' if layout == 'partitioned' else 'plain'}_{size}"


PARTITIONED = "partitioned=true"
"""The query parameters of the partitioned layout (``--partitioned`` changes them)."""


def dsn_of(dsn: str, size: int, layout: str, partitioned: str = PARTITIONED) -> str:
    extra = f"&{partitioned}" if layout == "partitioned" else ""
    return f"{dsn}?schema={schema_of(size, layout)}{extra}"


def fill_sql(schema: str, size: int) -> str:
    """``size`` closed jobs: completed chains created over 90 days, one in ten of two jobs."""
    job = f'"{schema}"."{PREFIX}job"'

    def created(k: str) -> str:
        return f"(now() - interval '90 days' + ({k}) * (interval '90 days' / {max(size, 1)}))"

    def id_of(k: str) -> str:
        return uuid7_sql(created(k), f"'h' || ({k})")

    return f"""
INSERT INTO {job} (id, type_name, chain_id, chain_type_name, chain_index, input, output, outcome,
    succeeded_by_job_id, created_at, scheduled_at, completed_at, completed_by, attempt,
    last_attempt_at)
SELECT
    {id_of("i")},
    CASE WHEN second THEN 'history_ship' ELSE 'history_place' END,
    CASE WHEN second THEN {id_of("i - 1")} ELSE {id_of("i")} END,
    'history_place',
    CASE WHEN second THEN 1 ELSE 0 END,
    json_build_object('n', i),
    CASE WHEN first THEN NULL ELSE '"ok"'::json END,
    'completed',
    CASE WHEN first THEN {id_of("i + 1")} END,
    created, created, created + interval '1 second', 'worker-' || (i % 8), 1, created
FROM (
    SELECT i, i % 10 = 1 AS first, i % 10 = 2 AS second, {created("i")} AS created
    FROM generate_series(1, {size}) AS i
) g
"""


async def ensure_history(
    dsn: str, size: int, rebuild: bool, layout: str = "plain", partitioned: str = PARTITIONED
) -> None:
    schema = schema_of(size, layout)
    conn = await asyncpg.connect(dsn)
    try:
        if rebuild:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        exists = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema
        )
        if exists:
            have = await conn.fetchval(
                f'SELECT count(*) FROM "{schema}"."{PREFIX}job" WHERE type_name <> $1', "bench_job"
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
    if layout == "partitioned":
        moving = await open_state_adapter(dsn_of(dsn, size, layout, partitioned))
        try:
            began = time.perf_counter()
            await moving.migrate_to_partitioned()  # type: ignore[attr-defined]
            took = time.perf_counter() - began
        finally:
            await moving.close()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'VACUUM ANALYZE "{schema}"."{PREFIX}job"')
        finally:
            await conn.close()
        print(f"moved {schema} to the partitioned layout in {took:.1f} s", flush=True)


async def forget_runs(dsn: str, size: int, layout: str) -> None:
    """Delete the jobs a round added, so that every round sees the same history."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f'DELETE FROM "{schema_of(size, layout)}"."{PREFIX}job" WHERE type_name = $1',
            "bench_job",
        )
    finally:
        await conn.close()


async def drop_history(dsn: str, sizes: list[int], layouts: list[str]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for size in sizes:
            for layout in layouts:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_of(size, layout)}" CASCADE')
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
    parser.add_argument("--layouts", default="plain", help="plain, partitioned or both")
    parser.add_argument(
        "--partitioned",
        default=PARTITIONED,
        help="the URL query of the partitioned layout (e.g. add &partitions_ahead=2)",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chains", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--drop", action="store_true", help="drop the history schemas at the end")
    args = parser.parse_args()
    sizes = [int(s) for s in args.history.split(",")]
    layouts = [name.strip() for name in args.layouts.split(",")]
    for layout in layouts:
        if layout not in LAYOUTS:
            raise SystemExit(f"unknown layout {layout!r} (expected {', '.join(LAYOUTS)})")
    print(
        f"queuert bench: history, python {platform.python_version()} on {platform.machine()}; "
        f"{args.runs} rounds, medians (min..max)",
        flush=True,
    )
    for layout in layouts:
        for size in sizes:
            asyncio.run(ensure_history(args.dsn, size, args.rebuild, layout, args.partitioned))
    cells = [(layout, size) for size in sizes for layout in layouts]
    processing: dict[tuple[str, int], list[float]] = {cell: [] for cell in cells}
    latency: dict[tuple[str, int], list[float]] = {cell: [] for cell in cells}
    for _ in range(args.runs):
        for layout, size in cells:
            dsn = dsn_of(args.dsn, size, layout, args.partitioned)
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
            processing[layout, size].append(run["process_per_s"])
            waited = child("latency", {"dsn": dsn, "samples": args.samples, "notify": "in_process"})
            latency[layout, size].append(waited["median_ms"])
            asyncio.run(forget_runs(args.dsn, size, layout))
    base = sizes[0]
    print(
        f"{'layout':>12}{'closed jobs':>12}{'process jobs/s':>18}{'claim latency ms':>20}"
        f"   (ratio to {base:,}; ranges)"
    )
    for layout, size in cells:
        p = statistics.median(processing[layout, size])
        q = statistics.median(latency[layout, size])
        p0 = statistics.median(processing[layout, base])
        q0 = statistics.median(latency[layout, base])
        print(
            f"{layout:>12}{size:>12,}{p:>18,.0f}{q:>20.2f}   ({p / p0:.2f}, {q / q0:.2f}; "
            f"{min(processing[layout, size]):,.0f}..{max(processing[layout, size]):,.0f} / "
            f"{min(latency[layout, size]):.2f}..{max(latency[layout, size]):.2f})"
        )
    if len(layouts) == 2:
        print("partitioned / plain at the same history: processing, claim latency")
        for size in sizes:
            pp = statistics.median(processing["partitioned", size])
            pl = statistics.median(processing["plain", size])
            qp = statistics.median(latency["partitioned", size])
            ql = statistics.median(latency["plain", size])
            print(f"{size:>24,}{pp / pl:>18.2f}{qp / ql:>20.2f}")
    if args.drop:
        asyncio.run(drop_history(args.dsn, sizes, layouts))


if __name__ == "__main__":
    main()
