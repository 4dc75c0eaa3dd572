"""OS processes that the suites start (multiprocessing's ``spawn``): collecting what they report, and
making sure none outlives its case."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Sequence
from typing import Any

__all__ = ["collect_reports", "reap"]


async def collect_reports(
    reports: Any, processes: Sequence[Any], count: int, timeout: float
) -> list[Any]:
    """``count`` reports from the multiprocessing queue ``reports``, each within ``timeout``
    seconds; then wait for ``processes`` to exit. Fails naming the exit codes when one is late."""
    got: list[Any] = []
    for _ in range(count):
        try:
            got.append(await asyncio.to_thread(reports.get, True, timeout))
        except queue.Empty:
            raise AssertionError(
                f"a process did not report within {timeout:g}s (exit codes: "
                f"{[p.exitcode for p in processes]}; reports so far: {len(got)})"
            ) from None
    for process in processes:
        await asyncio.to_thread(process.join, timeout)
    return got


async def reap(processes: Sequence[Any], timeout: float) -> None:
    """Kill the processes still alive and wait for them (a case's cleanup, whatever happened)."""
    for process in processes:
        if process.is_alive():
            process.kill()
            await asyncio.to_thread(process.join, timeout)
