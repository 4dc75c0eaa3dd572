"""The short version of ``tools/chaos/chaos.py``: worker processes SIGKILLed and their connections
terminated (and, on a private server, the server restarted) while chains with continuations and
blockers are started and processed; every chain must complete with each job's side effect committed
exactly once."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from pg_cluster import PrivateCluster
from pg_helpers import DSN

TOOL = Path(__file__).resolve().parents[3] / "tools" / "chaos" / "chaos.py"


def test_a_short_chaos_run_completes_every_chain_exactly_once() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(TOOL),
            "run",
            "--dsn",
            DSN,
            "--workers",
            "2",
            "--chains",
            "80",
            "--duration",
            "8",
            "--kill-every",
            "2",
            "--terminate-every",
            "1.5",
            "--seed",
            "7",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 0, (report, result.stderr[-3000:])
    assert report["ok"] and report["kills"] >= 2 and report["connections_terminated"] >= 1
    assert report["jobs"] >= 80 and report["drain_seconds"] is not None


def test_a_short_chaos_run_with_server_restarts_completes_every_chain_exactly_once() -> None:
    cluster = PrivateCluster()
    cluster.start()
    try:
        result = subprocess.run(
            [
                sys.executable,
                str(TOOL),
                "run",
                *("--dsn", cluster.dsn, "--workers", "2", "--chains", "80"),
                *("--duration", "10", "--kill-every", "3", "--terminate-every", "2"),
                *("--restart-command", shlex.join(cluster.restart_command())),
                *("--restart-every", "4", "--seed", "11"),
            ],
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        cluster.stop()
    report = json.loads(result.stdout)
    assert result.returncode == 0, (report, result.stderr[-3000:])
    assert report["ok"] and report["server_restarts"] >= 1 and report["kills"] >= 1
    assert report["jobs"] >= 80 and report["drain_seconds"] is not None
