"""The MySQL side of the resilience tests: an audit trigger that records every write of a job's
outcome, the final rows read for ``queuert_conformance.resilience``'s checks, and the connections
of a pool to kill. Job types, workload, handlers and the checks themselves come from
:mod:`queuert_conformance.resilience`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from mysql_helpers import make_adapter, sql
from queuert import Attempt, Backoff, Client, Lease, Worker
from queuert.in_memory import InProcessNotifyAdapter
from queuert_conformance import resilience
from queuert_conformance.resilience import (
    JOB_ROW_COLUMNS,
    JOB_TYPES,
    Progress,
    Workload,
    handlers,
)


async def install_audit(prefix: str, *, url: str | None = None) -> None:
    """A trigger that logs every change of a job's outcome, and every update of a closed job: a
    completion written twice, or a closed job touched again, shows up in the audit table."""
    await sql(
        f"CREATE TABLE `{prefix}audit` (seq BIGINT AUTO_INCREMENT PRIMARY KEY, "
        "job_id CHAR(36) NOT NULL, old_outcome VARCHAR(9), new_outcome VARCHAR(9))",
        url=url,
    )
    await sql(
        f"CREATE TRIGGER `{prefix}audit_trg` AFTER UPDATE ON `{prefix}job` FOR EACH ROW "
        "BEGIN IF OLD.outcome IS NOT NULL OR NOT (NEW.outcome <=> OLD.outcome) THEN "
        f"INSERT INTO `{prefix}audit` (job_id, old_outcome, new_outcome) "
        "VALUES (OLD.id, OLD.outcome, NEW.outcome); END IF; END",
        url=url,
    )


async def drop_audit(prefix: str, *, url: str | None = None) -> None:
    await sql(f"DROP TABLE IF EXISTS `{prefix}audit`", url=url)


async def count_closed_chains(prefix: str, *, url: str | None = None) -> int:
    """Chains whose tail is closed without a successor."""
    ((count,),) = await sql(
        f"SELECT COUNT(*) FROM `{prefix}job` "
        "WHERE outcome IS NOT NULL AND succeeded_by_job_id IS NULL",
        url=url,
    )
    return int(count)


async def wait_all_closed(
    prefix: str, expected: int, *, timeout: float, url: str | None = None
) -> float:
    """Wait until ``expected`` chains are closed; returns the seconds it took."""
    return await resilience.wait_all_closed(
        lambda: count_closed_chains(prefix, url=url), expected, timeout=timeout
    )


async def check_exactly_once(prefix: str, work: Workload, *, url: str | None = None) -> None:
    """:func:`queuert_conformance.resilience.check_exactly_once` on the final rows and the audit."""
    rows = await sql(
        "SELECT id, CONVERT(type_name USING utf8mb4), chain_id, chain_index, outcome, output, "
        f"succeeded_by_job_id, leased_by, open_blockers FROM `{prefix}job`",
        url=url,
    )
    writes = await sql(
        f"SELECT job_id, old_outcome, new_outcome FROM `{prefix}audit` ORDER BY seq", url=url
    )
    resilience.check_exactly_once(
        [dict(zip(JOB_ROW_COLUMNS, row, strict=True)) for row in rows],
        [(w[0], w[1], w[2]) for w in writes],
        work,
    )


def thread_ids(adapter: Any) -> list[int]:
    """The server thread ids of every connection in the adapter's aiomysql pool."""
    pool = adapter.provider.pool
    conns = [*pool._free, *pool._used]
    return [c.server_thread_id[0] for c in conns if not c.closed]


async def kill_connections(ids: list[int], *, prefix: str, url: str | None = None) -> int:
    """``KILL CONNECTION`` each of ``ids`` (only these); returns how many were still there.

    Then waits until the server has ended those threads and flushes ``prefix``'s job table: MariaDB
    keeps an open instance of a table with triggers whose loading was interrupted by the kill, and
    every later update through that instance fails with "Unknown trigger has an error in its body:
    'Query was empty'" until the table is flushed. The audit trigger is this test's own
    instrumentation (queuert's tables have no triggers), so the flush repairs the server's cache,
    not anything of queuert's."""
    killed = 0
    for thread in ids:
        try:
            await sql(f"KILL CONNECTION {int(thread)}", url=url)
            killed += 1
        except Exception as exc:  # gone already (closed by its pool meanwhile)
            if getattr(exc, "args", (None,))[0] != 1094:
                raise
    marks = ", ".join(["%s"] * len(ids))
    deadline = asyncio.get_running_loop().time() + 30
    while ids:
        alive = await sql(
            f"SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN ({marks})", *ids, url=url
        )
        if not alive:
            break
        assert asyncio.get_running_loop().time() < deadline, f"killed threads live on: {alive}"
        await asyncio.sleep(0.005)  # the killed threads end within a few milliseconds
    await sql(f"FLUSH TABLES `{prefix}job`", url=url)
    return killed


class Rig:
    """A worker (concurrency 10, 2 s lease) over an adapter of its own, and a producer client over
    another adapter whose connections the test leaves alone, both on ``prefix`` of the server of
    ``url``; every attempt the worker runs is counted in ``executions``. ``async with`` migrates and
    installs the audit trigger; leaving closes everything (and the tables stay for the checks)."""

    def __init__(self, prefix: str, *, url: str | None = None, poll_interval: float = 1.0) -> None:
        self.prefix, self.url, self.poll_interval = prefix, url, poll_interval
        self.progress = Progress()
        self.executions: Counter[str] = Counter()
        self._closing: list[Any] = []

    def _record(self, attempt: Attempt[Any]) -> None:
        self.executions[attempt.job.id] += 1

    async def __aenter__(self) -> Rig:
        try:
            self.state = await make_adapter(self.prefix, url=self.url, maxsize=12)
            self._closing.append(self.state)
            producer_state = await make_adapter(self.prefix, url=self.url, maxsize=2)
            self._closing.append(producer_state)
            notify = InProcessNotifyAdapter()
            self._closing.append(notify)
            self.client: Client[Any] = Client(
                self.state, job_types=JOB_TYPES, notify=notify, observability=self.progress
            )
            self.producer: Client[Any] = Client(producer_state, job_types=JOB_TYPES, notify=notify)
            self._closing[:0] = [self.client, self.producer]
            self.worker: Worker[Any] = Worker(
                self.client,
                concurrency=10,
                handlers=handlers(self._record),
                poll_interval=self.poll_interval,
                lease=Lease(duration=2.0, renew_every=0.5),
                reap_interval=0.25,
                backoff=Backoff(initial=0.02, maximum=0.2, jitter=0.1),
                recovery_backoff=Backoff(initial=0.02, maximum=0.5, jitter=0.1),
                shutdown_timeout=5,
            )
            self._closing.insert(0, self.worker)
            await self.state.migrate()
            await install_audit(self.prefix, url=self.url)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for closing in self._closing:
            await closing.close()

    def summary(self) -> str:
        p = self.progress
        return (
            f"re-run attempts {sum(self.executions.values()) - len(self.executions)}, worker "
            f"errors {p.count('worker_error')}, state errors {p.count('state_adapter_error')}, "
            f"failed attempts {p.count('job_attempt_failed')}, reaped {p.count('job_reaped')}"
        )
