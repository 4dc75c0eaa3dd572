"""Instruction counts under callgrind (valgrind), for the tools that compare checkouts by them.

A count does not move with the machine's load as a time does. The tools run a workload of a given
size and of twice that size, each in a process of its own under callgrind; the difference divided by
the extra work is the count per unit (imports, connecting and closing cancel out). :func:`medians`
runs that for each checkout ``repeat`` times, alternating the checkouts, and prints the medians.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

CALLGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
"""The prefix that runs a command under callgrind, keeping no profile (only its total)."""


def python_of(checkout: Path) -> str:
    """The checkout's own interpreter (its ``.venv``), or this one."""
    venv = checkout / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def collected(stderr: str, what: str) -> int:
    """The instruction total callgrind printed on ``stderr`` (``what`` names the run if it did not)."""
    found = re.search(r"Collected : (\d+)", stderr)
    if found is None:
        raise SystemExit(f"no instruction count from {what}:\n{stderr}")
    return int(found.group(1))


def count(command: Sequence[str], env: Mapping[str, str]) -> int:
    """The instructions ``command`` executes (it must succeed), under callgrind."""
    run = subprocess.run(
        [*CALLGRIND, *command], check=True, env=dict(env), capture_output=True, text=True
    )
    return collected(run.stderr, "callgrind")


def medians(
    sides: Sequence[tuple[str, Path]],
    *,
    repeat: int,
    size: int,
    run: Callable[[Path, int], int],
    unit: str,
) -> None:
    """For each ``(name, checkout)``, ``repeat`` times (alternating the checkouts, as the machine's
    state drifts): ``run(checkout, size)`` and ``run(checkout, 2 * size)``, whose difference over
    ``size`` is the count per ``unit``; prints each and then the medians."""
    per_unit: dict[str, list[float]] = {name: [] for name, _ in sides}
    for _ in range(repeat):
        for name, checkout in sides:
            small, large = run(checkout, size), run(checkout, 2 * size)
            per_unit[name].append((large - small) / size)
            print(f"{name}: {per_unit[name][-1]:,.0f} instructions per {unit}", flush=True)
    for name, values in per_unit.items():
        print(
            f"{name:<5} median {statistics.median(values):>10,.0f} instructions per {unit} "
            f"({', '.join(f'{v:,.0f}' for v in values)})"
        )
