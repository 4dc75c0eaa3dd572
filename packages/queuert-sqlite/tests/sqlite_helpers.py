"""Small builders shared by the SQLite tests."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from queuert.ids import uuid7
from queuert.json import JsonValue
from queuert.state import NewJob
from queuert_sqlite import SqliteStateAdapter
from queuert_sqlite._connection import ThreadConnection
from queuert_sqlite._driver import DRIVER_ENV, load_driver

T = TypeVar("T")

DRIVER = os.environ.get(DRIVER_ENV, "sqlite3")
"""The SQLite driver under test (QUEUERT_SQLITE_DRIVER=sqlean runs the suites on sqlean.py)."""
DBAPI = load_driver(DRIVER)

TYPE = "sqlite.test"
LEASE = {TYPE: timedelta(minutes=5)}


def new_job(input: JsonValue = None, *, type_name: str = TYPE, id: str | None = None) -> NewJob:
    return NewJob(id=id or uuid7(), type_name=type_name, chain_type_name=type_name, input=input)


PROC_SCRIPT = Path(__file__).with_name("sqlite_proc.py")


async def run_processes(argv: Sequence[Sequence[str]], timeout: float = 120.0) -> list[Any]:
    """Start one ``sqlite_proc.py`` process per argument list, release them together (after all
    printed ``ready``) and return each one's JSON result."""
    procs: list[asyncio.subprocess.Process] = []
    try:
        for args in argv:
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(PROC_SCRIPT),
                    *args,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
            )
        for proc in procs:
            assert proc.stdout is not None and proc.stderr is not None
            line = await asyncio.wait_for(proc.stdout.readline(), timeout)
            if line.strip() != b"ready":
                err = await proc.stderr.read()
                raise AssertionError(f"process did not start: {line!r} {err.decode()}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        results: list[Any] = []
        for proc in procs:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
            assert proc.returncode == 0, err.decode()
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


@contextmanager
def external_write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection (as another process would) holding the database's write lock."""
    # the same SQLite library as the adapter: two libraries in one process would break each
    # other's POSIX locks on the file
    raw: sqlite3.Connection = DBAPI.connect(str(path), isolation_level=None)
    try:
        raw.execute("BEGIN IMMEDIATE")
        yield raw
        if raw.in_transaction:
            raw.execute("ROLLBACK")
    finally:
        raw.close()


class HopCounter:
    """Counts round trips to connection threads (calls of the provider's per-connection hop)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = ThreadConnection.call

        def call(conn: ThreadConnection, fn: Callable[[], T]) -> Awaitable[T]:
            if conn.role != "checkpointer":  # background work, not part of an operation
                self.count += 1
            return original(conn, fn)

        monkeypatch.setattr(ThreadConnection, "call", call)

    def reset(self) -> None:
        self.count = 0


async def statements_of(adapter: SqliteStateAdapter) -> list[str]:
    """Start recording the SQL the writer connection executes; returns the (live) list."""
    seen: list[str] = []
    writer = adapter.provider._writer
    await writer.call(lambda: writer.raw.set_trace_callback(seen.append))
    return seen
