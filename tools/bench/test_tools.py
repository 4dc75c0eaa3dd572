"""The benchmark tools run end to end at a tiny size (their figures are not checked here: performance
claims come from full runs of the tools, reported in RESULTS.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).parent
POSTGRES = os.environ.get("QUEUERT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")

ROWS = ("single  noop", "batch   noop", "noop-quiet", "noop-atomic", "write-atomic", "write-staged")


def run_tool(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, str(HERE / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_processing_runs_every_mode_and_the_floor(backend: str, tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path}/bench.db" if backend == "sqlite" else POSTGRES
    out = run_tool("bench.py", "processing", "--dsn", dsn, "--runs", "1", "--chains", "30")
    for row in ROWS:
        assert row in out
    if backend == "postgres":
        assert "floor   write-atomic" in out
        assert "write-atomic / floor:" in out
        assert "start floor" not in out and "adapter (start)" not in out
    else:
        # a SQLite file: the floor of one-by-one starts, and no write-atomic floor
        assert "floor   (start)" in out
        assert "alone / start floor:" in out
        # the same starts through the state adapter alone, between the floor and alone
        assert "adapter (start)" in out and "alone / adapter:" in out
        assert "write-atomic / floor" not in out


def test_peer_comparison_runs_queuert_and_the_floors() -> None:
    """The comparison end to end without the peers (installing them needs the package index)."""
    prefix = f"bench_smoke_{uuid.uuid4().hex[:8]}_"
    systems = "queuert-pg-notify,floor-autocommit,floor-process"
    server = POSTGRES.rsplit("/", 1)[0]
    out = run_tool(
        "peers/compare.py",
        *("--server", server, "--prefix", prefix, "--systems", systems),
        *("--jobs", "40", "--rounds", "1"),
    )
    assert out.count("| queuert (") == 1
    assert out.count("| floor: asyncpg") == 2
    header = next(line for line in out.splitlines() if line.startswith("| system |"))
    names = [cell.strip() for cell in header.split("|")]
    processing = [line for line in out.splitlines() if "claims and batched completions" in line]
    cells = dict(zip(names, (cell.strip() for cell in processing[0].split("|")), strict=False))
    assert float(cells["process, jobs/s"].replace(",", "")) > 0
    assert float(cells["worker CPU, µs/job"].replace(",", "")) > 0
    one_by_one = [line for line in out.splitlines() if "alone, autocommit INSERT" in line]
    per_job = float(one_by_one[0].rsplit("|", 2)[1].split("/")[0])
    assert 1.0 <= per_job < 1.5  # a transaction per row, and the driver's few of its own
    queuert = [line for line in out.splitlines() if line.startswith("| queuert (")]
    per_start = float(queuert[0].rsplit("|", 2)[1].split("/")[0])
    assert 1.0 <= per_start < 1.5  # the wake-up rides in the start's own statement


def test_hotspots_profiles_every_phase(tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path}/profile.db"
    out = run_tool("hotspots.py", "--dsn", dsn, "--chains", "40", "--top", "3")
    phases = [line for line in out.splitlines() if line.startswith("== ")]
    assert len(phases) == 6, phases  # five profiled phases, then the one-chain transaction's steps
    assert "without a transaction" in phases[2]
    assert "write-atomic" in phases[4]
    assert "one-chain transaction, without the profiler" in out


def test_isolation_compares_in_process_and_isolated_handlers() -> None:
    out = run_tool("isolation.py", "--runs", "1", "--jobs", "20")
    assert out.count("isolation adds") == 2  # at concurrency 1 and 10


def test_runtimes_runs_every_loop_and_driver() -> None:
    out = run_tool(
        "runtimes.py", "--dsn", POSTGRES, "--runs", "1", "--chains", "30", "--single", "5"
    )
    for loop, driver in (
        ("asyncio", "asyncpg"),
        ("uvloop", "asyncpg"),
        ("asyncio", "psycopg"),
        ("uvloop", "psycopg"),
    ):
        assert f"{loop:<9}{driver:<9}" in out


def test_otel_compares_off_on_and_the_sdk_floor() -> None:
    out = run_tool("bench.py", "otel", "--dsn", "memory://", "--runs", "1", "--chains", "30")
    for row in ("off ", "sdk ", "on ", "on 10%", "SDK floor alone"):
        assert row in out
    for process in ("noop-atomic", "noop"):  # the atomic mode and group-committed completions
        assert f"{process:<13}on/off" in out
        assert f"{process:<13}sdk/off" in out
        assert f"{process}: CPU per job, on - off =" in out
        assert f"{process}: off + floor alone =" in out


def test_history_compares_sizes_of_history_and_layouts() -> None:
    out = run_tool(
        "history.py",
        *("--dsn", POSTGRES, "--history", "0,300", "--runs", "1"),
        *("--layouts", "plain,partitioned"),
        *("--chains", "30", "--samples", "3", "--rebuild", "--drop"),
    )
    assert "(ratio to 0; ranges)" in out
    assert out.count("(1.00, 1.00;") == 2, "one base row per layout"
    assert "moved bench_hist_part_300 to the partitioned layout" in out
    assert "partitioned / plain at the same history" in out


@pytest.mark.parametrize("layout", ["plain", "partitioned"])
def test_retention_measures_deletion_alone_and_beside_processing(layout: str) -> None:
    out = run_tool(
        "retention.py",
        *("--dsn", POSTGRES, "--runs", "1", "--chains", "30", "--expired", "200"),
        *("--layout", layout),
    )
    assert f"{layout} layout" in out
    assert "retention alone, chains deleted/s" in out
    assert "processing with retention / alone" in out


def test_the_mysql_atomic_floor_runs_to_its_end() -> None:
    """``floor.py``'s atomic-processing floor on MySQL runs at a tiny size: a claimer and ten
    handlers work until the claimer finds no unclaimed row left, in every repetition."""
    import asyncio

    sys.path.insert(0, str(HERE))
    from floor import REPEATS, mysql_processing

    url = os.environ.get("QUEUERT_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
    samples = asyncio.run(mysql_processing(url, jobs=60))["process"]
    assert len(samples) == REPEATS and all(sample > 0 for sample in samples)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_limits_compares_a_limited_type_with_an_unlimited_one(backend: str, tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path}/bench.db" if backend == "sqlite" else POSTGRES
    out = run_tool("limits.py", "--dsn", dsn, "--runs", "1", "--chains", "30")
    assert "no limit" in out and "limit / no limit:" in out


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_limits_times_claim_calls_with_and_without_a_limit(backend: str, tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path}/bench.db" if backend == "sqlite" else POSTGRES
    out = run_tool("limits.py", "--dsn", dsn, "--claims", "40")
    assert "µs per claim" in out and "limit - no limit:" in out


def test_atomic_split_runs_every_variant() -> None:
    out = run_tool("atomic_split.py", "--dsn", POSTGRES, "--runs", "1", "--jobs", "20")
    for variant in ("driver", "pool", "adapter tx", "complete_job"):
        assert f"\n{variant} " in out


def test_batch_start_compares_two_schemas() -> None:
    out = run_tool(
        "batch_start.py",
        "--dsn",
        POSTGRES,
        "--calls",
        "4",
        "--size",
        "5",
        "--base",
        str(HERE.parents[1]),
    )
    rows = [line for line in out.splitlines() if line.startswith(("this checkout", "base"))]
    assert [row.split()[0] for row in rows] == ["this", "base"], out


def test_starts_compares_one_by_one_and_batches_with_a_base_its_statements_and_the_floor() -> None:
    out = run_tool(
        "starts.py",
        "--dsn",
        POSTGRES,
        "--rounds",
        "1",
        "--starts",
        "20",
        "--batches",
        "2",
        "--base",
        str(HERE.parents[1]),
    )
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["this", "base", "statement", "floor"], out


def test_starts_profiles_one_by_one_and_batches() -> None:
    assert "per start:" in run_tool("starts.py", "--dsn", POSTGRES, "--profile", "--starts", "20")
    out = run_tool("starts.py", "--dsn", POSTGRES, "--profile", "--starts", "0", "--batches", "2")
    assert "per chain:" in out


def test_transaction_cpu_times_the_hooks_a_transaction_and_a_statement() -> None:
    out = run_tool("transaction_cpu.py", "--dsn", POSTGRES, "--blocks", "2")
    assert out.count(" min ") == 3  # the hooks alone, an empty transaction, one statement


def test_worker_instructions_seeds_and_processes_the_jobs_it_counts() -> None:
    """Both steps the tool runs for each count (the second under callgrind, left out here: it
    takes minutes): every job it starts is processed, with and without events."""
    import asyncio

    sys.path.insert(0, str(HERE))
    from bench import drop_backend

    dsn = f"{POSTGRES}?schema=bench_wi_{uuid.uuid4().hex[:8]}"
    try:
        for events in ((), ("--events",)):
            run_tool("worker_instructions.py", "--seed", "--dsn", dsn, "--jobs", "30")
            run_tool("worker_instructions.py", "--process", "--dsn", dsn, "--jobs", "30", *events)
    finally:
        asyncio.run(drop_backend(dsn))
    dsn = f"{POSTGRES}?schema=bench_wi_{uuid.uuid4().hex[:8]}"
    atomic = ("--dsn", dsn, "--jobs", "30", "--handler", "write-atomic")
    try:  # the exactly-once path: each job's row written once, in the job's own transaction
        run_tool("worker_instructions.py", "--seed", *atomic)
        run_tool("worker_instructions.py", "--process", *atomic)
    finally:
        asyncio.run(drop_backend(dsn))


@pytest.mark.parametrize("layer", ["driver", "provider", "transactions", "state", "attempt"])
def test_atomic_instructions_closes_every_job_once_in_each_layer(layer: str) -> None:
    """The loop the tool counts (under callgrind, left out here: it takes minutes), in each layer,
    one job after another and (but on the one connection of ``driver``) a claim's at once: every
    job closed, its row written once."""
    import asyncio

    sys.path.insert(0, str(HERE))
    from bench import drop_backend

    for together in ((), ("--together",)) if layer != "driver" else ((),):
        dsn = f"{POSTGRES}?schema=bench_ai_{uuid.uuid4().hex[:8]}"
        try:
            seed = ("--seed", "--dsn", dsn, "--jobs", "25", "--handler", "write-atomic")
            run_tool("worker_instructions.py", *seed)
            run_tool(
                "atomic_instructions.py",
                *("--process", "--dsn", dsn, "--jobs", "25", "--layer", layer, *together),
            )
        finally:
            asyncio.run(drop_backend(dsn))
