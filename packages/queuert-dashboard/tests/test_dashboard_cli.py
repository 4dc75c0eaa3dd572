"""``queuert dashboard``: found by the core's command line through its entry point, without the
dashboard being imported until the command runs."""

from __future__ import annotations

import subprocess
import sys


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
