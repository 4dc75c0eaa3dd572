"""Run the ``queuert-django`` tests on each Django LTS release that supports the running Python.

    uv run python tools/matrix/django.py                    # 4.2 and 5.2 (those this Python supports)
    uv run python tools/matrix/django.py --versions 4.2     # one of them
    uv run python tools/matrix/django.py -- -n 2 -k sqlite  # arguments after -- go to pytest

The default test run uses the Django of ``uv.lock``; this tool runs the same tests with each LTS
release instead, through ``uv run --with "django>=X.Y,<X.Y+1"`` (an overlay environment over the
workspace's; nothing in the workspace changes). The tests need the PostgreSQL of ``QUEUERT_PG_DSN``
(default ``postgresql://postgres@127.0.0.1:5432/test``), the Redis of ``QUEUERT_REDIS_URL``
(default ``redis://127.0.0.1:6379/0``) and the NATS of ``QUEUERT_NATS_URL`` (default
``nats://127.0.0.1:4222``). A release that does not support the running
Python is reported as such, not run. Prints a Markdown table at the end; the exit status is 1 if
any run failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = "packages/queuert-django/tests"

PYTHONS = {
    "4.2": ((3, 8), (3, 12)),
    "5.2": ((3, 10), (3, 14)),
}
"""The Python versions each LTS release supports (oldest, newest), from Django's release notes."""


def supported(version: str) -> bool:
    oldest, newest = PYTHONS[version]
    return oldest <= sys.version_info[:2] <= newest


def run_version(version: str, pytest_args: list[str]) -> tuple[str, float]:
    major, minor = (int(part) for part in version.split("."))
    requirement = f"django>={major}.{minor},<{major}.{minor + 1}"
    command = [
        "uv",
        "run",
        "--no-sync",
        "--with",
        requirement,
        "python",
        "-m",
        "pytest",
        "-q",
        TESTS,
        *pytest_args,
    ]
    print(f"[matrix] Django {version}: {' '.join(command)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, check=False)
    return ("passed" if result.returncode == 0 else "FAILED"), time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", default=",".join(PYTHONS), help="comma-separated, e.g. 4.2")
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest")
    args = parser.parse_args(argv)
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    unknown = [v for v in versions if v not in PYTHONS]
    if unknown:
        parser.error(f"unknown versions {unknown}; known: {', '.join(PYTHONS)}")
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    rows: list[tuple[str, str, str]] = []
    for version in versions:
        if not supported(version):
            rows.append((version, "not supported on this Python", "-"))
            continue
        outcome, seconds = run_version(version, args.pytest_args)
        rows.append((version, outcome, f"{seconds:.0f} s"))
    print(f"\n| Django (Python {python}) | tests | time |\n|---|---|---|")
    for version, outcome, took in rows:
        print(f"| {version} | {outcome} | {took} |")
    return 1 if any(outcome == "FAILED" for _, outcome, _ in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
