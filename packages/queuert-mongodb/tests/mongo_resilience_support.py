"""The MongoDB side of the resilience tests: the job documents read as
:data:`queuert_conformance.resilience.JOB_ROW_COLUMNS` rows, and an audit of every write of a job's
outcome read back from a change stream over the whole run. Job types, workload, handlers and the
checks themselves come from :mod:`queuert_conformance.resilience`.
"""

from __future__ import annotations

from collections import Counter
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

_CLOSING_FIELDS = ("outcome", "output", "completed_at", "completed_by", "succeeded_by_job_id")


async def start_audit(url: str) -> Any:
    """The server's operation time now: the audit reads every change from there on."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(url)
    try:
        async with client.start_session() as session:
            await client[DATABASE].command("ping", session=session)
            return session.operation_time
    finally:
        await client.close()


async def audit(prefix: str, url: str, since: Any) -> list[OutcomeWrite]:
    """Every update of a job document since ``since`` that set its outcome, or touched the outcome
    fields of a closed job, in the order written: (job id, outcome before, outcome after)."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(url)
    try:
        db = client[DATABASE]
        end = db[f"{prefix}audit_end"]
        await end.insert_one({"end": True})
        outcomes: dict[str, Any] = {}
        writes: list[OutcomeWrite] = []
        pipeline = [{"$match": {"ns.coll": {"$in": [f"{prefix}jobs", end.name]}}}]
        async with await db.watch(pipeline, start_at_operation_time=since) as stream:
            while True:
                change = await stream.try_next()
                if change is None:
                    continue
                if change["ns"]["coll"] == end.name:
                    break
                job_id = str(change["documentKey"]["_id"])
                kind = change["operationType"]
                if kind in ("insert", "replace"):
                    before = outcomes.get(job_id)
                    after = change["fullDocument"].get("outcome")
                    if kind == "replace" and (before is not None or after != before):
                        writes.append((job_id, before, after))
                    outcomes[job_id] = after
                elif kind == "update":
                    fields = change["updateDescription"]["updatedFields"]
                    before = outcomes.get(job_id)
                    after = fields.get("outcome", before)
                    if any(f in fields for f in _CLOSING_FIELDS) and (
                        before is not None or after != before
                    ):
                        writes.append((job_id, before, after))
                    outcomes[job_id] = after
        return writes
    finally:
        await client.close()


async def job_rows(prefix: str, url: str) -> list[dict[str, Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(url)
    try:
        rows = []
        async for doc in client[DATABASE][f"{prefix}jobs"].find({}):
            succeeded = doc.get("succeeded_by_job_id")
            open_blockers = sum(1 for b in doc.get("blockers") or [] if b.get("o"))
            rows.append(
                {
                    "id": str(doc["_id"]),
                    "type_name": doc["type_name"],
                    "chain_id": str(doc["chain_id"]),
                    "chain_index": doc["chain_index"],
                    "outcome": doc.get("outcome"),
                    "output": doc.get("output"),
                    "succeeded_by_job_id": None if succeeded is None else str(succeeded),
                    "leased_by": doc.get("leased_by"),
                    "open_blockers": open_blockers or int(bool(doc.get("blocked"))),
                }
            )
        return rows
    finally:
        await client.close()


async def count_closed_chains(prefix: str, url: str) -> int:
    client: AsyncMongoClient[Any] = AsyncMongoClient(url)
    try:
        return await client[DATABASE][f"{prefix}jobs"].count_documents(
            {"outcome": {"$ne": None}, "succeeded_by_job_id": None}
        )
    finally:
        await client.close()


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
