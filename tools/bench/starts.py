"""Chain starts without a transaction on PostgreSQL, one by one and in batches, with the client CPU
each costs: this checkout against another (``--base``), rounds interleaved.

    uv run python tools/bench/starts.py --dsn postgresql://postgres@127.0.0.1:5432/test \\
        --base ../base-checkout --rounds 5

Each run is a fresh child process on a fresh schema: a client with a
:class:`~queuert_postgres.PgNotifyAdapter` (what several processes use) and
``LoggingObservability`` (the default), ``--starts`` chains started with ``await
client.start_chain(job)`` one after another, then ``--batches`` batches of 100 with ``await
client.start_chains(jobs)`` (a warm-up of each first). It reports, per start (or per chain of a
batch), the wall time and the process's CPU time. The base side runs the same child code, interpreter
and dependencies with the base checkout's ``queuert`` and ``queuert_postgres`` first on
``PYTHONPATH``, so only the library differs (``--src`` does the same for this side: a tree exported
from a commit, measured while the checkout changes). Every round also runs queuert's own statements
sent alone (``statement``: asyncpg on queuert's schema, the statements and arguments the adapter
sends, wake-ups included, with no client) and the floor: asyncpg alone, an autocommit one-row
``INSERT`` into a table with one index, and a 100-row ``INSERT ... SELECT FROM unnest`` into it.

``--profile`` prints, instead, the calls per start under cProfile (``--starts 0``: per chain of the
batches); ``--instructions`` counts the instructions per start and per chain of a batch under
callgrind (valgrind), which the machine's load does not disturb as it does times.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from callgrind import CALLGRIND, collected

BATCH = 100
WARM = 200


@dataclass
class Item:
    n: int


def figures(
    starts: int, one_cpu: float, one_wall: float, chains: int, batch_cpu: float, batch_wall: float
) -> dict[str, float]:
    """Rates and per-start times (zero for a part that did not run)."""
    starts_, chains_ = max(starts, 1), max(chains, 1)
    return {
        "one_per_s": starts / one_wall if starts else 0.0,
        "one_cpu_us": one_cpu / starts_ * 1e6,
        "one_wall_us": one_wall / starts_ * 1e6,
        "batch_per_s": chains / batch_wall if chains else 0.0,
        "batch_cpu_us": batch_cpu / chains_ * 1e6,
    }


def print_profile(prof: cProfile.Profile, count: int, what: str) -> None:
    """Stop ``prof`` and print its functions with the most time of their own
    (``STARTS_PROFILE_ROWS``, 40 by default), the callers of those matching
    ``STARTS_PROFILE_CALLERS`` if set, and the calls per ``what`` over ``count`` of them; the
    statistics also go to the file ``STARTS_PROFILE_DUMP`` names, if set (for ``pstats``)."""
    prof.disable()
    stats = pstats.Stats(prof)
    if os.environ.get("STARTS_PROFILE_DUMP"):
        stats.dump_stats(os.environ["STARTS_PROFILE_DUMP"])
    stats.sort_stats("tottime").print_stats(int(os.environ.get("STARTS_PROFILE_ROWS", "40")))
    callers = os.environ.get("STARTS_PROFILE_CALLERS")
    if callers:
        stats.print_callers(callers)
    print(f"per {what}: {stats.total_calls / count:.1f} calls")  # type: ignore[attr-defined]


def measure(
    starts: int, batches: int, profile: bool, profile_batches: bool = False
) -> Any:  # pragma: no cover - runs in the child
    from bench import isolated_dsn, run_on_own_schema  # noqa: F401 - its path set up by the child
    from queuert import Client, EntryJobType
    from queuert.backends import open_state_adapter
    from queuert_postgres import PgNotifyAdapter

    class StartJob(EntryJobType[Item, None], name="start_job"):
        pass

    async def run(dsn: str) -> dict[str, float]:
        state = await open_state_adapter(dsn)
        await state.migrate()
        notify = PgNotifyAdapter(dsn.split("?")[0], channel_prefix=f"s{uuid.uuid4().hex[:8]}")
        client: Client[Any] = Client(state, notify=notify, job_types=[StartJob])
        try:
            for i in range(WARM):
                await client.start_chain(StartJob(Item(i)))
            for _ in range(3):
                await client.start_chains([StartJob(Item(i)) for i in range(BATCH)])
            jobs = [StartJob(Item(i)) for i in range(starts)]
            prof = cProfile.Profile() if profile else None
            if prof is not None:
                prof.enable()
            cpu, wall = time.process_time(), time.perf_counter()
            for job in jobs:
                await client.start_chain(job)
            one_cpu, one_wall = time.process_time() - cpu, time.perf_counter() - wall
            if prof is not None:
                print_profile(prof, starts, "start")
                return {}
            groups = [[StartJob(Item(i)) for i in range(BATCH)] for _ in range(batches)]
            prof = cProfile.Profile() if profile_batches else None
            if prof is not None:
                prof.enable()
            cpu, wall = time.process_time(), time.perf_counter()
            for group in groups:
                await client.start_chains(group)
            batch_cpu, batch_wall = time.process_time() - cpu, time.perf_counter() - wall
            if prof is not None:
                print_profile(prof, batches * BATCH, "chain")
                return {}
        finally:
            await client.close()
            await notify.close()
            await state.close()
        return figures(starts, one_cpu, one_wall, batches * BATCH, batch_cpu, batch_wall)

    return run


def floor(starts: int, batches: int) -> Any:  # pragma: no cover - runs in the child
    import asyncpg

    async def run(dsn: str) -> dict[str, float]:
        schema = dsn.split("schema=")[1].split("&")[0]
        conn = await asyncpg.connect(dsn.split("?")[0])
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            table = f'"{schema}".floor_job'
            await conn.execute(
                f"CREATE TABLE {table} (id uuid PRIMARY KEY, type_name text NOT NULL,"
                " input jsonb, created_at timestamptz NOT NULL DEFAULT now())"
            )
            one = f"INSERT INTO {table} (id, type_name, input) VALUES ($1, $2, $3::jsonb)"
            many = (
                f"INSERT INTO {table} (id, type_name, input) SELECT i, $2, p::jsonb"
                " FROM unnest($1::uuid[], $3::text[]) AS u(i, p)"
            )
            for i in range(WARM):
                await conn.execute(one, uuid.uuid4(), "start_job", f'{{"n": {i}}}')
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(starts):
                await conn.execute(one, uuid.uuid4(), "start_job", f'{{"n": {i}}}')
            one_cpu, one_wall = time.process_time() - cpu, time.perf_counter() - wall
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(batches):
                await conn.execute(
                    many,
                    [uuid.uuid4() for _ in range(BATCH)],
                    "start_job",
                    [f'{{"n": {i}}}' for i in range(BATCH)],
                )
            batch_cpu, batch_wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            await conn.close()
        return figures(starts, one_cpu, one_wall, batches * BATCH, batch_cpu, batch_wall)

    return run


def statement(starts: int, batches: int) -> Any:  # pragma: no cover - runs in the child
    """The statements queuert sends for starts without ``tx``, sent alone: asyncpg on one
    connection, into queuert's schema with its indexes, one start's ``INSERT`` with its wake-up
    (``create_one_notify``) one after another, then a batch's with its wake-up
    (``create_first_notify``, its arguments built by the adapter's own code). What is left between
    this and the client is queuert's Python."""
    import asyncpg
    from queuert.backends import open_state_adapter
    from queuert.ids import uuid7
    from queuert.state import NewJob
    from queuert_postgres import PgStateAdapter

    def news(count: int) -> list[NewJob]:
        return [
            NewJob(
                id=uuid7(),
                type_name="start_job",
                chain_type_name="start_job",
                input={"n": i},
                input_text=f'{{"n": {i}}}',
            )
            for i in range(count)
        ]

    async def run(dsn: str) -> dict[str, float]:
        state = await open_state_adapter(dsn)
        await state.migrate()
        assert isinstance(state, PgStateAdapter)
        one, many = state.sql.create_one_notify.text, state.sql.create_first_notify_alone.text
        await state.close()
        wake = ("queuert_bench", "start_job")
        conn = await asyncpg.connect(dsn.split("?")[0])
        try:

            def one_args(new: NewJob) -> list[Any]:
                # id, type, chain type, input, at, after, trace contexts, priority, limit key
                return [
                    *(new.id, "start_job", "start_job", new.input_text),
                    *(None, None, None, None, 0, None, *wake),
                ]

            for new in news(WARM):
                await conn.fetch(one, *one_args(new))
            rows = [one_args(new) for new in news(starts)]
            cpu, wall = time.process_time(), time.perf_counter()
            for row in rows:
                await conn.fetch(one, *row)
            one_cpu, one_wall = time.process_time() - cpu, time.perf_counter() - wall
            groups = [news(BATCH) for _ in range(batches)]
            cpu, wall = time.process_time(), time.perf_counter()
            for group in groups:
                args = PgStateAdapter._first_args(group)
                await conn.fetch(many, *args, [wake[0]], [wake[1]])
            batch_cpu, batch_wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            await conn.close()
        return figures(starts, one_cpu, one_wall, batches * BATCH, batch_cpu, batch_wall)

    return run


def child(args: list[str]) -> None:  # pragma: no cover - runs in the child
    kind, dsn, starts, batches = args[0], args[1], int(args[2]), int(args[3])
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench import run_on_own_schema

    if kind == "floor":
        result = run_on_own_schema("starts.py", dsn, floor(starts, batches))
    elif kind == "statement":
        result = run_on_own_schema("starts.py", dsn, statement(starts, batches))
    else:
        profile, profile_batches = kind == "profile", kind == "profile-batches"
        result = run_on_own_schema(
            "starts.py", dsn, measure(starts, batches, profile, profile_batches)
        )
    print(json.dumps(result))


def run_side(
    python: str,
    kind: str,
    dsn: str,
    starts: int,
    batches: int,
    src: str | None = None,
    wrap: Sequence[str] = (),
) -> dict[str, float]:
    env = dict(os.environ)
    if src is not None:  # this side's library from another tree (a snapshot of a commit)
        packages = os.path.join(src, "packages")
        env["PYTHONPATH"] = os.pathsep.join(
            os.path.join(packages, name, "src") for name in ("queuert-core", "queuert-postgres")
        )
    out = subprocess.run(
        [*wrap, python, __file__, "_child", kind, dsn, str(starts), str(batches)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    if wrap:
        result["instructions"] = float(collected(out.stderr, wrap[0]))
    return result


def instructions(sides: list[tuple[str, str, str, str | None]], args: argparse.Namespace) -> None:
    """The client's instructions per start and per chain of a batch, counted by callgrind: each
    side runs ``--starts`` starts and twice as many, then ``--batches`` batches and twice as many
    (every run with its warm-up and set-up); the differences divided by the extra starts or chains
    leave the start alone. Counts do not depend on the machine's load, as times do."""
    n, m = args.starts, args.batches
    for name, python, kind, src in sides:
        if kind != "queuert":
            continue
        counts: list[float] = []
        for starts, batches in ((n, 0), (2 * n, 0), (0, m), (0, 2 * m)):
            result = run_side(python, kind, args.dsn, starts, batches, src, CALLGRIND)
            counts.append(result["instructions"])
        one = (counts[1] - counts[0]) / n
        batch = (counts[3] - counts[2]) / (m * BATCH)
        print(
            f"{name}: {one:,.0f} instructions per start one by one, "
            f"{batch:,.0f} per chain in batches of {BATCH}",
            flush=True,
        )


COLUMNS = [
    ("one by one, starts/s", "one_per_s", "{:,.0f}"),
    ("one by one, wall µs/start", "one_wall_us", "{:.0f}"),
    ("one by one, CPU µs/start", "one_cpu_us", "{:.1f}"),
    ("batches of 100, chains/s", "batch_per_s", "{:,.0f}"),
    ("batches of 100, CPU µs/chain", "batch_cpu_us", "{:.2f}"),
]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--base", help="another checkout to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--starts", type=int, default=3000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument(
        "--src", help="run this side's library from another tree (e.g. an exported commit)"
    )
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count the client's instructions per start under callgrind (valgrind) instead",
    )
    args = parser.parse_args()
    if args.profile:
        # one by one, or the batches alone with --starts 0
        kind, batches = ("profile", 0) if args.starts else ("profile-batches", args.batches)
        out = subprocess.run(
            [sys.executable, __file__, "_child", kind, args.dsn, str(args.starts), str(batches)],
            check=False,
        )
        raise SystemExit(out.returncode)
    sides: list[tuple[str, str, str, str | None]] = [("this", sys.executable, "queuert", args.src)]
    if args.base:  # the same interpreter and dependencies, the base checkout's library
        sides.append(("base", sys.executable, "queuert", args.base))
    if not args.no_floor:
        sides.append(("statement", sys.executable, "statement", None))
        sides.append(("floor", sys.executable, "floor", None))
    if args.instructions:
        for _ in range(args.rounds):
            instructions(sides, args)
        return
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _, _, _ in sides}
    for round_no in range(args.rounds):
        order = sides if round_no % 2 == 0 else sides[::-1]
        for name, python, kind, src in order:
            result = run_side(python, kind, args.dsn, args.starts, args.batches, src)
            results[name].append(result)
            shown = ", ".join(fmt.format(result[key]) for _, key, fmt in COLUMNS)
            print(f"round {round_no + 1} {name}: {shown}", flush=True)
    print()
    print("| side | " + " | ".join(title for title, _, _ in COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for name, runs in results.items():
        cells = []
        for _, key, fmt in COLUMNS:
            values = sorted(r[key] for r in runs)
            cells.append(
                f"{fmt.format(statistics.median(values))} "
                f"({fmt.format(values[0])}..{fmt.format(values[-1])})"
            )
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
