"""The MongoDB side of the resilience tests: the job documents read as
:data:`queuert_conformance.resilience.JOB_ROW_COLUMNS` rows, and an audit of every write of a job's
outcome read back from a change stream over the whole run, with the readers of
``tools/chaos/mongo_exactly_once.py``. Job types, workload, handlers and the checks themselves come
from :mod:`queuert_conformance.resilience`.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

from mongo_helpers import DATABASE, open_adapter
from pymongo import AsyncMongoClient
from queuert import Attempt, Backoff, Client, Lease, Worker
from queuert_conformance import resilience
from queuert_conformance.resilience import (
    JOB_TYPES,
    OutcomeWrite,
    Progress,
    Workload,
    handlers,
)
from queuert_mongodb import MongoNotifyAdapter

_TOOL = Path(__file__).resolve().parents[3] / "tools" / "chaos" / "mongo_exactly_once.py"


def _load_tool() -> ModuleType:
    """``tools/chaos/mongo_exactly_once.py``, whose readers of the store these tests share."""
    spec = importlib.util.spec_from_file_location("mongo_exactly_once", _TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_tool = _load_tool()


@contextlib.asynccontextmanager
async def _database(url: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(url)
    try:
        yield client[DATABASE]
    finally:
        await client.close()


async def start_audit(url: str) -> Any:
    """The server's operation time now: the audit reads every change from there on."""
    async with _database(url) as db:
        return await _tool.operation_time(db)


async def audit(prefix: str, url: str, since: Any) -> list[OutcomeWrite]:
    """Every update of a job document since ``since`` that set its outcome, or touched the outcome
    fields of a closed job, in the order written: (job id, outcome before, outcome after)."""
    async with _database(url) as db:
        writes: list[OutcomeWrite] = await _tool.audit(db, prefix, since)
        return writes


async def job_rows(prefix: str, url: str) -> list[dict[str, Any]]:
    async with _database(url) as db:
        rows: list[dict[str, Any]] = await _tool.job_rows(db, prefix)
        return rows


async def count_closed_chains(prefix: str, url: str) -> int:
    async with _database(url) as db:
        return int(await _tool.count_closed(db, prefix))


async def wait_all_closed(prefix: str, url: str, expected: int, *, timeout: float) -> float:
    return await resilience.wait_all_closed(
        lambda: count_closed_chains(prefix, url), expected, timeout=timeout
    )


async def check_exactly_once(prefix: str, url: str, work: Workload, since: Any) -> None:
    """:func:`queuert_conformance.resilience.check_exactly_once` on the final documents and the
    audit of outcome writes since ``since``."""
    resilience.check_exactly_once(
        await job_rows(prefix, url), await audit(prefix, url, since), work
    )


class Rig:
    """A worker (concurrency 10, 2 s lease) over an adapter of its own and a producer client over
    another, both on ``prefix`` of the server at ``url``, woken through change streams; every
    attempt the worker runs is counted in ``executions``. ``async with`` migrates; leaving closes
    everything (the collections stay for the checks)."""

    def __init__(self, prefix: str, url: str, *, poll_interval: float = 1.0) -> None:
        self.prefix, self.url, self.poll_interval = prefix, url, poll_interval
        self.progress = Progress()
        self.executions: Counter[str] = Counter()
        self._closing: list[Any] = []

    def _record(self, attempt: Attempt[Any]) -> None:
        self.executions[attempt.job.id] += 1

    async def __aenter__(self) -> Rig:
        try:
            options = {"serverSelectionTimeoutMS": 2000}
            self.state = await open_adapter(self.prefix, self.url, **options)
            self._closing.append(self.state)
            producer_state = await open_adapter(self.prefix, self.url, **options)
            self._closing.append(producer_state)
            notifies = [
                MongoNotifyAdapter(
                    s.client,
                    database=DATABASE,
                    collection_prefix=self.prefix,
                    reconnect_delay=0.05,
                    max_reconnect_delay=0.5,
                )
                for s in (self.state, producer_state)
            ]
            self._closing[:0] = notifies
            self.client: Client[Any] = Client(
                self.state, job_types=JOB_TYPES, notify=notifies[0], observability=self.progress
            )
            self.producer: Client[Any] = Client(
                producer_state, job_types=JOB_TYPES, notify=notifies[1]
            )
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
