"""The ``queuert`` command: demo, worker (with signals) and migrate."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from queuert.backends import available_schemes
from queuert.demo import run_demo

APP = textwrap.dedent(
    """
    from dataclasses import dataclass
    from typing import Any
    from queuert import Attempt, Client, EntryJobType, InMemoryStateAdapter, Worker

    @dataclass
    class Hello:
        name: str

    class SayHello(EntryJobType[Hello, str], name="say_hello"):
        pass

    async def make_worker() -> Worker[Any]:
        client: Client[Any] = Client(InMemoryStateAdapter(), job_types=[SayHello])
        worker: Worker[Any] = Worker(client, poll_interval=0.05, shutdown_timeout=5)

        @worker.handler(SayHello)
        async def say_hello(attempt: Attempt[SayHello]) -> None:
            print("hello", attempt.input.name, flush=True)
            await attempt.complete("done")
            if attempt.input.name == "stop":
                worker.stop()

        async with client.transaction() as tx:
            await client.start_chain(SayHello(Hello(NAME)), tx=tx)
        return worker
    """
)


def _run_cli(args: list[str], cwd: Path, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.Popen(
        [sys.executable, "-m", "queuert.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[arg-type]
    )


def test_worker_command_runs_a_worker_from_user_code(tmp_path: Path) -> None:
    (tmp_path / "app_stop.py").write_text(APP.replace("NAME", '"stop"'))
    process = _run_cli(["worker", "app_stop:make_worker"], tmp_path)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "hello stop" in out


def test_worker_command_shuts_down_gracefully_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "app_wait.py").write_text(APP.replace("NAME", '"world"'))
    process = _run_cli(["worker", "app_wait:make_worker"], tmp_path)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "hello world"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err


def test_worker_command_rejects_what_is_not_a_worker(tmp_path: Path) -> None:
    (tmp_path / "not_a_worker.py").write_text("thing = 42\n")
    process = _run_cli(["worker", "not_a_worker:thing"], tmp_path)
    _, err = process.communicate(timeout=30)
    assert process.returncode != 0
    assert "is not a queuert Worker" in err


def test_migrate_command(tmp_path: Path) -> None:
    process = _run_cli(["migrate", "--dsn", "memory://"], tmp_path)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "up to date" in out
    process = _run_cli(["migrate", "--dsn", "nosuch://x"], tmp_path)
    _, err = process.communicate(timeout=30)
    assert process.returncode != 0 and "no state adapter" in err


async def test_demo_runs_the_whole_workflow() -> None:
    out = io.StringIO()
    results = await asyncio.wait_for(run_demo(dsn="memory://", orders=2, out=out), 60)
    assert [r.order_id for r in results] == ["o1", "o2"]
    text = out.getvalue()
    assert "failed: payment gateway timed out" in text, "the demo shows a retry"
    assert "unblocked" in text, "the demo shows a fan-in"
    assert text.count("chain completed") == 2


async def test_demo_defaults_to_sqlite_when_installed() -> None:
    if "sqlite" not in available_schemes():
        raise AssertionError(
            "queuert-sqlite is part of the workspace and registers the sqlite scheme"
        )
    out = io.StringIO()
    results = await asyncio.wait_for(run_demo(orders=1, out=out), 60)
    assert len(results) == 1
    assert "state in sqlite:///" in out.getvalue()
