"""``manage.py queuert_migrate`` and ``manage.py queuert_worker`` in the test project, run as
subprocesses on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import queue
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from django_project import SCHEMA, manage, pg_execute
from queuert import Client
from queuert_django.connections import open_client

WAIT = 30.0
"""Upper bound of every wait: a bug fails the test instead of hanging it."""


def _finish(process: subprocess.Popen[str], timeout: float = WAIT) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"still running after {timeout} s\n{out}\n{err}") from None
    return process.returncode, out, err


def test_queuert_migrate_creates_the_tables_then_finds_them_up_to_date(
    alias: str, tmp_path: Path
) -> None:
    fresh_schema = f"{SCHEMA}_m"
    env = {"QUEUERT_DJANGO_SQLITE": str(tmp_path / "fresh.sqlite3")}
    if alias == "pg":
        pg_execute(f'CREATE SCHEMA "{fresh_schema}"')
        env["QUEUERT_DJANGO_PG_SCHEMA"] = fresh_schema
    try:
        status, out, err = _finish(manage("queuert_migrate", alias=alias, env=env))
        assert status == 0, err
        assert "applied  " in out
        status, out, err = _finish(manage("queuert_migrate", alias=alias, env=env))
        assert status == 0, err
        assert "up to date" in out
        assert "applied" not in out
    finally:
        if alias == "pg":
            pg_execute(f'DROP SCHEMA "{fresh_schema}" CASCADE')


def test_queuert_worker_refuses_a_worker_path_that_does_not_import(alias: str) -> None:
    status, _, err = _finish(
        manage("queuert_worker", "--worker", "shop.nowhere.build", alias=alias)
    )
    assert status != 0
    assert "cannot import 'shop.nowhere.build'" in err


class _Lines:
    """The subprocess's stdout, line by line, read on a thread (so a wait can time out)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout

        def pump() -> None:
            for line in stdout:
                self._lines.put(line)
            self._lines.put(None)

        self._thread = threading.Thread(target=pump, daemon=True)
        self._thread.start()

    def wait_for(self, prefix: str, timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            if line is None:
                raise AssertionError(f"the process ended before printing {prefix!r}")
            if line.startswith(prefix):
                return line


async def _start(job: Any) -> str:
    async with open_client() as client:
        chain = await client.start_chain(job)
        return chain.id


async def _wait(chain_id: str, job_type: Any) -> Any:
    async with open_client() as client:
        return await _wait_with(client, chain_id, job_type)


async def _wait_with(client: Client[Any], chain_id: str, job_type: Any) -> Any:
    return await client.wait_for_chain(chain_id, job_type, timeout=WAIT, poll_interval=0.1)


@pytest.mark.parametrize("job", ["receipt", "slow"])
def test_queuert_worker_finishes_the_job_in_flight_on_sigterm_and_exits_cleanly(
    alias: str, job: str
) -> None:
    from shop.jobs import OrderRef, Pause, Paused, Receipt, SendReceipt, SlowJob
    from shop.models import Order

    # SQLite has no notifications across processes: the worker polls often instead
    worker = manage(
        "queuert_worker",
        alias=alias,
        env={"SHOP_POLL_INTERVAL": "0.1", "SHOP_SHUTDOWN_TIMEOUT": "10"},
    )
    lines = _Lines(worker)
    try:
        if job == "receipt":
            reference = f"o-{uuid.uuid4().hex[:8]}"
            Order.objects.using(alias).create(reference=reference)
            chain_id = asyncio.run(_start(SendReceipt(OrderRef(reference))))
            assert asyncio.run(_wait(chain_id, SendReceipt)) == Receipt(reference)
            assert Order.objects.using(alias).get(reference=reference).receipt_sent
        else:
            chain_id = asyncio.run(_start(SlowJob(Pause(1.5))))
        if job == "slow":
            lines.wait_for("started ")
        worker.send_signal(signal.SIGTERM)
        status, _, err = _finish(worker)
        assert status == 0, err
        if job == "slow":
            # the handler was running when SIGTERM came: it finished before the worker exited
            assert asyncio.run(_wait(chain_id, SlowJob)) == Paused(1.5)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
