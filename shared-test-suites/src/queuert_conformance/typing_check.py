"""Check a file of typing expectations with ``mypy --strict``, for tests of a typed public API.

In the checked file, a line ending in ``# E: <code>`` must produce exactly that mypy error, no
other line may produce one, and each ``reveal_type(...)`` line is compared with the
``# R: <type>`` that ends it::

    start_chain(Publish(PublishIn("x")))  # E: type-var
    reveal_type(start_chain(Fetch(FetchIn("x"))))  # R: queuert.models.Chain[check_api.Fetch]

Types are written with the checked file's module name as mypy shows them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

__all__ = ["assert_typing_expectations"]


def _expectations(check_file: Path) -> tuple[dict[int, str], dict[int, str]]:
    errors: dict[int, str] = {}
    reveals: dict[int, str] = {}
    for number, line in enumerate(check_file.read_text().splitlines(), start=1):
        if match := re.search(r"# E: ([\w-]+)", line):
            errors[number] = match.group(1)
        if "reveal_type(" in line and (match := re.search(r"# R: (.+)$", line)):
            reveals[number] = match.group(1).strip()
    return errors, reveals


def assert_typing_expectations(check_file: Path, *, root: Path) -> None:
    """Run ``mypy --strict`` on ``check_file`` with the configuration of ``root/pyproject.toml``
    (from ``root``) and assert that its errors and revealed types are exactly the expected ones."""
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
            str(check_file),
        ],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    expected_errors, expected_reveals = _expectations(check_file)
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
        if not path.endswith(check_file.name):
            if kind == "error":
                unexpected.append(line)
            continue
        if kind == "note" and message.startswith("Revealed type is"):
            got_reveals[number] = message.split('"')[1]
        elif kind == "error":
            code = re.search(r"\[([\w-]+)\]$", message)
            got_errors[number] = code.group(1) if code else message
    assert not unexpected, "mypy errors outside the check file:\n" + "\n".join(unexpected)
    assert got_errors == expected_errors, completed.stdout
    assert got_reveals == expected_reveals, completed.stdout
