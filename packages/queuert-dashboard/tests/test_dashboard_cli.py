"""``queuert dashboard``: found by the core's command line through its entry point, without the
dashboard being imported until the command runs."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

try:
    import httpx2 as httpx
except ImportError:  # httpx2 needs Python 3.11; 3.10 has httpx
    import httpx  # type: ignore[no-redef, import-not-found, unused-ignore]


def test_the_core_command_lists_the_dashboard_without_importing_it() -> None:
    code = (
        "import sys\n"
        "from queuert.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'queuert_dashboard' not in sys.modules, 'imported'\n"
        "assert 'starlette' not in sys.modules, 'imported'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "dashboard" in run.stdout
    assert "provided by queuert-dashboard" in run.stdout


def test_the_command_parses_its_own_arguments() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "queuert.cli", "dashboard", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "--read-only" in run.stdout and "--dsn" in run.stdout and "--port" in run.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "queuert.cli", "dashboard"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "--dsn" in missing.stderr


def test_built_in_commands_still_refuse_unknown_arguments() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "queuert.cli", "migrate", "--dsn", "memory://", "--bogus"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "unrecognized arguments: --bogus" in run.stderr


async def test_the_command_serves_the_dashboard(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "queuert.cli", "migrate", "--dsn", db
    )
    assert await asyncio.wait_for(migrate.wait(), 60) == 0
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "queuert.cli",
        "dashboard",
        "--dsn",
        db,
        "--port",
        "0",
        "--read-only",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        match = re.search(r"listening on (http://\S+)", line)
        assert match, line
        async with httpx.AsyncClient() as http:
            page = await http.get(match.group(1))
        assert page.status_code == 200
        assert "read-only" in page.text and "content-security-policy" in page.headers
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
