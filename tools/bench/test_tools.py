"""The benchmark tools run end to end at a tiny size (their figures are not checked here: performance
claims come from full runs of the tools, reported in RESULTS.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
POSTGRES = os.environ.get("QUEUERT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")

ROWS = ("single  noop", "batch   noop", "noop-atomic", "write-atomic", "write-staged")


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
    else:
        assert "floor" not in out
