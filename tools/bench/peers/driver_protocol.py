"""What every driver of the peer comparison shares (standard library only: the drivers of the
peers run in the peers' own environments, where nothing of queuert is installed).

A driver is run as ``python drive_<system>.py COMMAND DSN JOBS`` and prints one JSON line: the
measured part's wall time (``seconds``), the process's CPU time over it (``cpu_seconds``, every
thread included), its peak resident set size (``max_rss_kib``) and the version of the system it
drives. The command marks the measured part with :class:`Clock` (connecting, installing handlers and
importing are outside it).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Measures from :meth:`start` to :meth:`stop`."""

    def __init__(self) -> None:
        self.result: dict[str, float] = {}
        self._wall = 0.0
        self._cpu = 0.0

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), _cpu()

    def stop(self) -> None:
        self.result = {
            "seconds": time.perf_counter() - self._wall,
            "cpu_seconds": _cpu() - self._cpu,
            "max_rss_kib": float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
        }


Command = Callable[[str, int, Clock], Coroutine[Any, Any, None]]
"""``(dsn, jobs, clock)``: the commands are ``setup`` (install the system's schema; not measured),
``enqueue-single`` (``jobs`` jobs, one call each), ``enqueue-batch`` (in calls of 100) and ``work``
(one worker at concurrency 10 processes ``jobs`` jobs already enqueued, and stops)."""

CONCURRENCY = 10
BATCH = 100


def payload(index: int) -> dict[str, int]:
    """Every system's job carries this input (encoded as JSON by the system)."""
    return {"index": index}


def main(commands: dict[str, Command], version: str) -> None:
    command, dsn, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    clock = Clock()
    asyncio.run(commands[command](dsn, jobs, clock))
    print(json.dumps({"version": version, **clock.result}))
