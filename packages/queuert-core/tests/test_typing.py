"""The public API is typed so that mypy catches misuse: checks typing/check_api.py with mypy --strict."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

CHECK_FILE = Path(__file__).parent / "typing" / "check_api.py"


def _expectations() -> tuple[dict[int, str], dict[int, str]]:
    errors: dict[int, str] = {}
    reveals: dict[int, str] = {}
    for number, line in enumerate(CHECK_FILE.read_text().splitlines(), start=1):
        if match := re.search(r"# E: ([\w-]+)", line):
            errors[number] = match.group(1)
        if "reveal_type(" in line and (match := re.search(r"# R: (.+)$", line)):
            reveals[number] = match.group(1).strip()
    return errors, reveals


def test_mypy_catches_misuse_and_infers_types() -> None:
    root = Path(__file__).resolve().parents[3]
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--show-error-codes",
            "--config-file",
            str(root / "pyproject.toml"),
            str(CHECK_FILE),
        ],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    expected_errors, expected_reveals = _expectations()
    got_errors: dict[int, str] = {}
    got_reveals: dict[int, str] = {}
    unexpected: list[str] = []
    for line in completed.stdout.splitlines():
        match = re.match(r"(.+?):(\d+): (error|note): (.*)", line)
        if not match:
            continue
        path, number, kind, message = (
            match.group(1),
            int(match.group(2)),
            match.group(3),
            match.group(4),
        )
        if not path.endswith("check_api.py"):
            if kind == "error":
                unexpected.append(line)
            continue
        if kind == "note" and message.startswith("Revealed type is"):
            got_reveals[number] = message.split('"')[1].replace("check_api.", "check_api.")
        elif kind == "error":
            code = re.search(r"\[([\w-]+)\]$", message)
            got_errors[number] = code.group(1) if code else message
    assert not unexpected, "mypy errors outside the check file:\n" + "\n".join(unexpected)
    assert got_errors == expected_errors, completed.stdout
    assert got_reveals == expected_reveals, completed.stdout
