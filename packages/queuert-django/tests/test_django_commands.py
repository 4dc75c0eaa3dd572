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
from django.db import transaction
from django_project import SCHEMA, manage, pg_execute
from queuert import Client
from queuert_django import db_connection, get_sync_client, open_client, start_chain

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


async def _wait(chain_id: str, job_type: Any, timeout: float = WAIT) -> Any:
    async with open_client() as client:
        return await _wait_with(client, chain_id, job_type, timeout)


async def _wait_with(
    client: Client[Any], chain_id: str, job_type: Any, timeout: float = WAIT
) -> Any:
    return await client.wait_for_chain(chain_id, job_type, timeout=timeout, poll_interval=0.1)


def _worker(alias: str, shutdown_timeout: str = "10") -> subprocess.Popen[str]:
    # on PostgreSQL only the commit's NOTIFY can wake the worker within 15 s (it polls once a minute
    # and reaps, then claims, every 30 s); SQLite has no notifications across processes (without
    # Redis), so there it polls often
    poll = "60" if alias == "pg" else "0.1"
    return manage(
        "queuert_worker",
        alias=alias,
        env={"SHOP_POLL_INTERVAL": poll, "SHOP_SHUTDOWN_TIMEOUT": shutdown_timeout},
    )


def _cancel(chain_id: str, alias: str) -> None:
    """Cancel a chain a stopped worker returned to the queue, so that no later worker takes it."""
    with transaction.atomic(using=alias):
        get_sync_client().cancel_chain(chain_id, tx=db_connection())


def _stop(worker: subprocess.Popen[str]) -> None:
    if worker.poll() is None:
        worker.kill()
        worker.communicate()


def test_queuert_worker_processes_a_chain_committed_in_django_s_transaction(alias: str) -> None:
    """The worker first takes a ten-minute job into one of its two slots (so its first claims are
    over); on PostgreSQL only the NOTIFY of Django's commit then gets the chain processed in time."""
    from shop.jobs import OrderRef, Pause, Receipt, SendReceipt, SlowJob
    from shop.models import Order

    worker = _worker(alias, shutdown_timeout="0.5")
    lines = _Lines(worker)
    try:
        lines.wait_for("worker_started")  # listening: a NOTIFY from now on reaches it
        slow_id = start_chain(SlowJob(Pause(600))).id
        lines.wait_for(f"started {slow_id}")
        reference = f"o-{uuid.uuid4().hex[:8]}"
        with transaction.atomic(using=alias):
            Order.objects.using(alias).create(reference=reference)
            chain_id = start_chain(SendReceipt(OrderRef(reference))).id
        assert asyncio.run(_wait(chain_id, SendReceipt, timeout=15)) == Receipt(reference)
        assert Order.objects.using(alias).get(reference=reference).receipt_sent
        worker.send_signal(signal.SIGTERM)
        status, _, err = _finish(worker)
        assert status == 0, err
        _cancel(slow_id, alias)
    finally:
        _stop(worker)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_queuert_worker_finishes_the_job_in_flight_when_stopped_and_exits_cleanly(
    alias: str, stop: signal.Signals
) -> None:
    from shop.jobs import Pause, Paused, SlowJob

    worker = _worker(alias)
    lines = _Lines(worker)
    try:
        lines.wait_for("worker_started")
        chain_id = start_chain(SlowJob(Pause(1.5))).id
        lines.wait_for("started ")
        worker.send_signal(stop)
        status, _, err = _finish(worker)
        assert status == 0, err
        # the handler was running when the signal came: it finished before the worker exited
        assert asyncio.run(_wait(chain_id, SlowJob)) == Paused(1.5)
    finally:
        _stop(worker)


def test_queuert_worker_returns_a_job_that_outlasts_the_shutdown_timeout_and_exits_in_time(
    alias: str,
) -> None:
    from shop.jobs import Pause, SlowJob

    worker = manage(
        "queuert_worker",
        alias=alias,
        env={"SHOP_POLL_INTERVAL": "0.1", "SHOP_SHUTDOWN_TIMEOUT": "0.5"},
    )
    lines = _Lines(worker)
    try:
        lines.wait_for("worker_started")
        chain_id = start_chain(SlowJob(Pause(600))).id
        lines.wait_for(f"started {chain_id}")
        worker.send_signal(signal.SIGTERM)
        # shutdown_timeout (0.5 s) plus the cleanup grace, not the handler's ten minutes
        status, _, err = _finish(worker, timeout=15)
        assert status == 0, err

        async def chain_after_exit() -> Any:
            async with open_client() as client:
                return await client.get_chain(chain_id, SlowJob)

        job = asyncio.run(chain_after_exit()).tail
        # back in the queue: ready for the next worker, leased by nobody
        assert (job.status, job.leased_by, job.attempt) == ("ready", None, 1)
        _cancel(chain_id, alias)
    finally:
        _stop(worker)


@pytest.mark.parametrize("broker", ["redis", "nats"])
def test_with_broker_wake_ups_queuert_worker_processes_a_committed_chain_at_once(
    alias: str, broker: str
) -> None:
    """``QUEUERT["NOTIFY"]`` a Redis or NATS URL, on SQLite as on PostgreSQL. The worker polls once a
    minute (and claims when it reaps expired leases, every half lease: 30 s) and is busy with a
    ten-minute job in one of its two slots, which it took once its subscription was up: only
    the wake-up published after Django's commit gets the second chain processed within 15 s."""
    from django.test.utils import override_settings
    from django_brokers import BROKERS
    from django_project import queuert_settings
    from shop.jobs import OrderRef, Pause, Receipt, SendReceipt, SlowJob

    with override_settings(QUEUERT=queuert_settings(alias, NOTIFY=BROKERS[broker])):
        worker = manage(
            "queuert_worker",
            alias=alias,
            env={
                "SHOP_POLL_INTERVAL": "60",
                "SHOP_SHUTDOWN_TIMEOUT": "0.5",
                "QUEUERT_DJANGO_NOTIFY": BROKERS[broker],
            },
        )
        lines = _Lines(worker)
        try:
            lines.wait_for("worker_started")
            slow_id = start_chain(SlowJob(Pause(600))).id
            lines.wait_for(f"started {slow_id}")  # the subscription is up, the worker idle
            reference = f"o-{uuid.uuid4().hex[:8]}"
            with transaction.atomic(using=alias):
                chain_id = start_chain(SendReceipt(OrderRef(reference))).id
            assert asyncio.run(_wait(chain_id, SendReceipt, timeout=15)) == Receipt(reference)
            worker.send_signal(signal.SIGTERM)
            status, _, err = _finish(worker)
            assert status == 0, err
            _cancel(slow_id, alias)
        finally:
            _stop(worker)
