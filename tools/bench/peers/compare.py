"""queuert next to pgqueuer and procrastinate: the same workload for each, on one PostgreSQL.

    uv run python tools/bench/peers/compare.py                       # 10,000 jobs, 3 rounds
    uv run python tools/bench/peers/compare.py --rounds 5 --systems queuert-pg-notify,pgqueuer

For each system, in a database of its own on the server (``--server``; named after the system and
this run, created afresh for every phase and dropped at the end): 10,000 no-op jobs enqueued one by one (one call each), then in a new
database 10,000 in batches of 100, which one worker process at concurrency 10 then processes. Every
phase runs in a process of its own; the enqueuer's and the worker's CPU time, and the worker's peak
RSS, are their process's (the
measured part starts once the worker is built and connected, and ends when it has written the last
completion). Transactions per job are the database's ``xact_commit + xact_rollback`` from
``pg_stat_database`` over the phase (read once every connection to the database has closed, so that
the counts are flushed), divided by the jobs. Rounds are interleaved (each round runs every system
once, in a rotating order) and the table gives medians with the range over the rounds.

The floors run in the same rounds: asyncpg alone on a one-index table (one-row autocommit
``INSERT``, ``BEGIN``/``INSERT``/``COMMIT``, 100-row ``INSERT``), and for processing asyncpg alone
claiming jobs on one connection (at most 30 in flight, as queuert's worker holds) and completing them in batches on another (its
CPU time per job is what the statements and the driver cost; a queue's worker spends the rest).

pgqueuer and procrastinate are installed by this tool, each in a virtual environment of its own
under the cache directory (``--cache-dir``, by default ``~/.cache/queuert-bench/peers``), with
``uv venv`` and ``uv pip install`` from the package index: never into the workspace. Their code is
driven through their public APIs by the ``drive_*.py`` scripts next to this file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

HERE = Path(__file__).parent
PEERS: dict[str, list[str]] = {
    "pgqueuer": ["pgqueuer==1.6.0", "asyncpg==0.32.0"],
    "procrastinate": ["procrastinate==3.10.0", "psycopg[binary,pool]==3.3.9"],
}
"""What each peer's environment gets (pinned, so that a rerun measures the same code)."""

COLUMNS = ("single", "batch", "process")


@dataclass
class System:
    name: str
    driver: str
    database: str
    phases: list[list[tuple[str, str]]]
    """Groups of (driver command, column), each group in a fresh database after ``setup``."""
    extra: list[str] = field(default_factory=list)
    python: str = sys.executable
    version: str = ""


QUEUE_PHASES = [
    [("enqueue-single", "single")],
    [("enqueue-batch", "batch"), ("work", "process")],
]


def systems() -> dict[str, System]:
    return {
        "queuert-pg-notify": System(
            "queuert (PgNotifyAdapter)", "drive_queuert.py", "queuert", QUEUE_PHASES, ["postgres"]
        ),
        "queuert-no-notify": System(
            "queuert (no notify adapter)", "drive_queuert.py", "queuert", QUEUE_PHASES, ["none"]
        ),
        "pgqueuer": System("pgqueuer", "drive_pgqueuer.py", "pgqueuer", QUEUE_PHASES),
        "procrastinate": System(
            "procrastinate", "drive_procrastinate.py", "procrastinate", QUEUE_PHASES
        ),
        "floor-autocommit": System(
            "floor: asyncpg {version} alone, autocommit INSERT",
            "drive_floor.py",
            "floor",
            [[("insert-autocommit", "single")]],
        ),
        "floor-tx": System(
            "floor: asyncpg {version} alone, BEGIN/INSERT/COMMIT",
            "drive_floor.py",
            "floor",
            [[("insert-tx", "single")]],
        ),
        "floor-batch": System(
            "floor: asyncpg {version} alone, 100-row INSERT",
            "drive_floor.py",
            "floor",
            [[("insert-batch", "batch")]],
        ),
        "floor-process": System(
            "floor: asyncpg {version} alone, claims and batched completions",
            "drive_floor.py",
            "floor",
            [[("fill", "fill"), ("work", "process")]],
        ),
    }


# -- the peers' environments -----------------------------------------------------------------------


def peer_python(peer: str, cache_dir: Path) -> str:
    """The interpreter of ``peer``'s own environment, created (and its packages installed) if
    missing. The environment's directory is named after its requirements and Python version."""
    requirements = PEERS[peer]
    tag = "-".join(r.replace("[", "_").replace("]", "").replace(",", "_") for r in requirements)
    pyver = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    venv = cache_dir / f"{peer}-{pyver}-{tag}"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if python.exists() and marker.exists():
        return str(python)
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("the peers' environments are created with uv: install it first")
    print(f"installing {' '.join(requirements)} into {venv}", file=sys.stderr)
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([uv, "venv", "--quiet", "--python", base, str(venv)], check=True)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), *requirements], check=True
    )
    marker.write_text("\n".join(requirements) + "\n")
    return str(python)


# -- the server ------------------------------------------------------------------------------------


def database_dsn(server: str, database: str) -> str:
    return f"{server.rstrip('/')}/{database}"


async def recreate(admin: asyncpg.Connection, database: str) -> None:
    await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{database}"')


async def transactions(admin: asyncpg.Connection, database: str) -> int:
    """Committed and rolled-back transactions of ``database`` so far, once no session is connected
    to it (a session flushes its statistics when it ends)."""
    deadline = time.monotonic() + 30
    while await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database
    ):
        if time.monotonic() > deadline:
            raise SystemExit(f"sessions on {database} did not end")
        await asyncio.sleep(0.05)
    value = await admin.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", database
    )
    return int(value)


def drive(system: System, command: str, dsn: str, jobs: int, timeout: float) -> dict[str, float]:
    try:
        out = subprocess.run(
            [system.python, str(HERE / system.driver), command, dsn, str(jobs), *system.extra],
            capture_output=True,
            text=True,
            check=False,
            cwd=HERE,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise SystemExit(f"{system.name} {command} did not finish in {timeout:.0f} s") from None
    if out.returncode != 0:
        raise SystemExit(f"{system.name} {command} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    system.version = str(result.pop("version"))
    return {key: float(value) for key, value in result.items()}


@dataclass
class Sample:
    rate: float
    tx_per_job: float
    cpu_us: float | None = None
    rss_mib: float | None = None


async def one_round(
    admin: asyncpg.Connection, system: System, args: argparse.Namespace
) -> dict[str, Sample]:
    server, jobs = args.server, args.jobs
    database = f"{args.prefix}{system.database}"
    dsn = database_dsn(server, database)
    samples: dict[str, Sample] = {}
    for group in system.phases:
        await recreate(admin, database)
        drive(system, "setup", dsn, jobs, args.timeout)
        for command, column in group:
            before = await transactions(admin, database)
            result = await asyncio.to_thread(drive, system, command, dsn, jobs, args.timeout)
            spent = await transactions(admin, database) - before
            sample = Sample(jobs / result["seconds"], spent / jobs)
            sample.cpu_us = result["cpu_seconds"] / jobs * 1e6
            if command == "work":
                sample.rss_mib = result["max_rss_kib"] / 1024
            samples[column] = sample
    await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return samples


# -- the table -------------------------------------------------------------------------------------


def spread(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    median = format(statistics.median(values), fmt)
    if len(values) == 1:
        return median
    return f"{median} ({format(min(values), fmt)}..{format(max(values), fmt)})"


def table(chosen: list[System], results: dict[str, list[dict[str, Sample]]]) -> str:
    lines = [
        "| system | enqueue one by one, jobs/s | enqueue in batches of 100, jobs/s | process, jobs/s "
        "| enqueuer CPU, µs/job: one by one / batch | worker CPU, µs/job | worker peak RSS, MiB "
        "| transactions per job: one by one / batch / process |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for system in chosen:
        rounds = results[system.name]

        def col(column: str, attr: str, fmt: str, rounds: list[dict[str, Sample]] = rounds) -> str:
            values = [
                value
                for r in rounds
                if column in r and (value := getattr(r[column], attr)) is not None
            ]
            return spread(values, fmt)

        txs = " / ".join(
            format(statistics.median(r[c].tx_per_job for r in rounds), ".2f")
            if all(c in r for r in rounds)
            else "-"
            for c in COLUMNS
        )
        label = (
            system.name.format(version=system.version)
            if "{version}" in system.name
            else f"{system.name} {system.version}".strip()
        )
        lines.append(
            f"| {label} | {col('single', 'rate', ',.0f')} | {col('batch', 'rate', ',.0f')} "
            f"| {col('process', 'rate', ',.0f')} "
            f"| {col('single', 'cpu_us', ',.1f')} / {col('batch', 'cpu_us', ',.1f')} "
            f"| {col('process', 'cpu_us', ',.0f')} "
            f"| {col('process', 'rss_mib', '.0f')} | {txs} |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> None:
    available = systems()
    names = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = [name for name in names if name not in available]
    if unknown:
        raise SystemExit(f"unknown systems {unknown}; choose from {', '.join(available)}")
    chosen = [available[name] for name in names]
    if not args.prefix.replace("_", "").isalnum():
        raise SystemExit("--prefix: letters, digits and underscores only")
    for name, system in zip(names, chosen, strict=True):
        if name in PEERS:
            system.python = peer_python(name, Path(args.cache_dir))
    admin = await asyncpg.connect(database_dsn(args.server, args.admin_database))
    try:
        server_version = await admin.fetchval("SHOW server_version")
        print(
            f"queuert peer comparison: {args.jobs:,} jobs, {args.rounds} rounds, PostgreSQL "
            f"{server_version}; python {platform.python_version()}, {os.cpu_count()} cpus; "
            f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
            flush=True,
        )
        results: dict[str, list[dict[str, Sample]]] = {system.name: [] for system in chosen}
        for round_no in range(args.rounds):
            shift = round_no % len(chosen)
            for system in chosen[shift:] + chosen[:shift]:
                print(
                    f"round {round_no + 1}: {system.driver} {' '.join(system.extra)}",
                    file=sys.stderr,
                    flush=True,
                )
                results[system.name].append(await one_round(admin, system, args))
    finally:
        for database in {f"{args.prefix}{system.database}" for system in chosen}:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("medians over the rounds (range in brackets)")
    print(table(chosen, results))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument(
        "--admin-database",
        default="postgres",
        help="where the tool connects to create the systems' databases and read their statistics",
    )
    parser.add_argument(
        "--prefix",
        default=f"bench_peers_{os.getpid()}_",
        help="the systems' databases are named PREFIX + system (dropped afterwards); unique per "
        "run by default, so that two runs on one server cannot drop each other's databases",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900,
        help="seconds a phase may take before the run fails (a phase that cannot finish must not hang)",
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--systems", default=",".join(systems()))
    parser.add_argument(
        "--cache-dir",
        default=str(
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
            / "queuert-bench"
            / "peers"
        ),
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
