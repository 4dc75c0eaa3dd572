"""The short version of ``tools/chaos/mongo_exactly_once.py``: worker processes on one collection
prefix process chains with continuations and blockers, and every chain closes exactly once (checked
on the documents and on an audit of every outcome write)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mongo_server import server_url

TOOL = Path(__file__).resolve().parents[3] / "tools" / "chaos" / "mongo_exactly_once.py"


def test_a_short_run_closes_every_chain_exactly_once() -> None:
    command = [sys.executable, str(TOOL), "run", "--url", server_url(), "--workers", "2"]
    result = subprocess.run(
        [*command, "--chains", "100", "--timeout", "120"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["exactly_once"] is True
    assert report["chains"] == 100
    assert report["jobs"] == 180  # 80 two-step chains, 4 fan-ins of 4 leaves and a join
    assert report["outcome_writes"] == report["jobs"]
