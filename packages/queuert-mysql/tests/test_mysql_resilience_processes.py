"""Resilience with worker *processes* sharing one table prefix: one of two worker processes is
SIGKILLed while its handlers are inside jobs (staged mode, 2 s lease) and a new process starts under
the same worker name. Every chain completes exactly once, the killed worker's jobs are reclaimed
within about one lease, and the surviving process keeps going. Wake-ups travel over Redis."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mysql_helpers import URL, drop_prefix, make_adapter, sql, unique_prefix
from mysql_resilience_support import check_exactly_once, drop_audit, install_audit, wait_all_closed
from queuert import Client
from queuert_conformance import worker_process as resilience_fleet
from queuert_conformance.resilience import producing_client
from queuert_redis import RedisNotifyAdapter

WORKER_SCRIPT = Path(__file__).with_name("mysql_resilience_worker.py")
REDIS_URL = os.environ.get("QUEUERT_REDIS_URL", "redis://127.0.0.1:6379/0")
LEASE = 2.0
RENEW_EVERY = 0.5
REAP_INTERVAL = 0.25


class Fleet(resilience_fleet.Fleet):
    """Worker processes under one table prefix, woken over Redis."""

    def __init__(self, prefix: str, root: Path) -> None:
        script = [sys.executable, str(WORKER_SCRIPT), "--dsn", URL, "--prefix", prefix]
        super().__init__(root, [*script, "--redis", REDIS_URL])
        self.prefix = prefix


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    prefix = unique_prefix()
    state = await make_adapter(prefix, maxsize=2)
    try:
        await state.migrate()
    finally:
        await state.close()
    await install_audit(prefix)
    result = Fleet(prefix, tmp_path)
    try:
        yield result
    finally:
        await result.close()
        await drop_audit(prefix)
        await drop_prefix(prefix)


@contextlib.asynccontextmanager
async def producer(fleet: Fleet) -> AsyncIterator[Client[Any]]:
    state = await make_adapter(fleet.prefix, maxsize=2)
    notify = RedisNotifyAdapter(REDIS_URL, prefix=fleet.channel_prefix)
    async with producing_client(state, notify) as client:
        yield client


async def test_sigkill_of_a_worker_process_mid_job(fleet: Fleet) -> None:
    store = resilience_fleet.StoreChecks(
        wait_all_closed=lambda expected, timeout: wait_all_closed(
            fleet.prefix, expected, timeout=timeout
        ),
        check_exactly_once=lambda work: check_exactly_once(fleet.prefix, work),
        completed_by=lambda job_ids: _completed_by(fleet.prefix, job_ids),
    )
    async with producer(fleet) as client:
        outcome = await resilience_fleet.sigkill_mid_job(
            fleet, client, store, lease=LEASE, renew_every=RENEW_EVERY, reap_interval=REAP_INTERVAL
        )
    print(f"\n{outcome}")


async def _completed_by(prefix: str, job_ids: list[str]) -> dict[str, str]:
    rows = await sql(
        f"SELECT id, CONVERT(completed_by USING utf8mb4) FROM `{prefix}job` "
        f"WHERE id IN ({', '.join(['%s'] * len(job_ids))})",
        *job_ids,
    )
    return {r[0]: r[1] for r in rows}
