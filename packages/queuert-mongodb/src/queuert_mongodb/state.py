"""``MongoStateAdapter``: the MongoDB implementation of :class:`queuert.state.StateAdapter`."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from bson import ObjectId
from bson.codec_options import CodecOptions, DatetimeConversion
from pymongo import ASCENDING, DESCENDING, UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from queuert.cursor import (
    decode_blocked_jobs_cursor,
    decode_chain_jobs_cursor,
    decode_chains_cursor,
    decode_jobs_cursor,
)
from queuert.errors import (
    BlockerReference,
    ChainNotFoundError,
    DuplicateJobIdError,
    JobAlreadyCompletedError,
    JobNotFoundError,
    JobTakenByAnotherWorkerError,
    StateAdapterClosedError,
    UsageError,
)
from queuert.limits import ConcurrencyLimit, take_within_limits
from queuert.opening import Opening
from queuert.paging import blocked_jobs_page, chain_jobs_page, chains_page, fetch_size, jobs_page
from queuert.schedule import scheduled_at
from queuert.state import (
    BlockersAdded,
    Capabilities,
    ChainFilter,
    ClaimResult,
    CompleteResult,
    Completion,
    CreatedJob,
    DeleteResult,
    JobActivity,
    JobFilter,
    JobStatus,
    LeaseRenewal,
    MigrationResult,
    NewJob,
    Order,
    Outcome,
    Page,
    QueueStats,
    StateAdapter,
    StatusCount,
    StoredChain,
    StoredJob,
    TriggerResult,
    WorkerActivity,
    activity_buckets,
    derive_status,
    queue_stats_in_order,
)

from queuert_mongodb._docs import (
    OBJECT_IDS,
    job_from_doc,
    millis,
    oid,
    oids,
    status_expression,
    until,
)
from queuert_mongodb._names import Names
from queuert_mongodb._schema import CLOCK_ID
from queuert_mongodb._schema import migrate as run_migrations
from queuert_mongodb._timeouts import with_default_timeouts
from queuert_mongodb._transactions import TRANSIENT, Sessions, is_transient
from queuert_mongodb.errors import StandaloneServerError, TransactionRetriesExhaustedError

__all__ = ["MongoStateAdapter"]

T = TypeVar("T")

logger = logging.getLogger("queuert.mongodb")

_RETRIES = 10
"""Attempts of a unit of work of the adapter's own that meets a transient transaction error."""

_CONTENDED_RETRIES = 100
"""Restarts of a caller's transaction in which a claim met a concurrent claimer before anything
else ran in it."""

_CODEC: CodecOptions[Any] = CodecOptions(
    tz_aware=True, tzinfo=timezone.utc, datetime_conversion=DatetimeConversion.DATETIME_AUTO
)
"""A BSON date outside Python's years 1-9999 (written by something else) decodes as a
``bson.DatetimeMS`` instead of failing the whole batch: the job reads marked ``unreadable``."""

_OPEN: dict[str, Any] = {"outcome": None}
_CLAIMABLE: dict[str, Any] = {"outcome": None, "leased_until": None, "blocked": False}


def _asc(order: Order) -> bool:
    return order == "asc"


def _after(order: Order, field: str, value: Any, job_id: str) -> dict[str, Any]:
    """Keyset condition: rows after (``field``, ``_id``) = (``value``, ``job_id``) in ``order``."""
    op = "$gt" if _asc(order) else "$lt"
    return {"$or": [{field: {op: value}}, {field: value, "_id": {op: oid(job_id)}}]}


class MongoStateAdapter:
    """Jobs, chains and blocker links in MongoDB (collections ``{collection_prefix}jobs``,
    ``{collection_prefix}locks`` and ``{collection_prefix}meta`` of ``database``).

    ``client`` is your ``pymongo.AsyncMongoClient``; the transaction object ``tx`` of every operation
    is an ``AsyncClientSession`` inside a transaction (``await session.start_transaction()``), so a
    chain started with your session commits or rolls back with your own writes. MongoDB runs
    multi-document transactions on replica sets and sharded clusters only (one node is enough); a
    standalone server is refused with :class:`~queuert_mongodb.errors.StandaloneServerError`.

    Call :meth:`migrate` once per deployment (idempotent, safe from several processes at once).
    :meth:`close` closes the client too when ``owns_client`` (as :meth:`connect` and ``from_url``
    make it).
    """

    ids = OBJECT_IDS

    def __init__(
        self,
        client: Any,
        *,
        database: str = "queuert",
        collection_prefix: str = "queuert_",
        owns_client: bool = False,
        retries: int = _RETRIES,
    ) -> None:
        self.names = Names(database, collection_prefix)
        self.client = client
        self._owns_client = owns_client
        db = client.get_database(database, codec_options=_CODEC)
        self.db = db
        self.jobs = db.get_collection(self.names.jobs)
        self.locks = db.get_collection(self.names.locks)
        self.meta = db.get_collection(self.names.meta)
        self.sessions = Sessions(client, retries=retries, flush=self._flush)
        self.capabilities = Capabilities(
            savepoints=False,  # MongoDB transactions have no savepoints
            row_locks=False,  # a conflicting write fails at once (WriteConflict); it never waits
            concurrent_transactions=True,
            multi_process=True,
            poison_transaction=True,
            concurrency_limits=True,
        )
        self._closed = False
        self._topology_checked = False

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        database: str = "queuert",
        collection_prefix: str = "queuert_",
        retries: int = _RETRIES,
        **client_options: Any,
    ) -> Opening[MongoStateAdapter]:
        """An adapter over a new ``AsyncMongoClient(url, **client_options)``, closed with it.
        ``retries`` bounds the attempts of the adapter's own units of work (see the class). Unless
        the URL or ``client_options`` set them, the client gives up connecting after 10 s, finding
        a server after 10 s and waiting for an answer after 60 s (``connectTimeoutMS``,
        ``serverSelectionTimeoutMS``, ``socketTimeoutMS``; PyMongo's own defaults would wait
        30 s for a server and forever for an answer)."""
        Names(database, collection_prefix)  # validate before connecting

        async def open() -> MongoStateAdapter:
            from pymongo import AsyncMongoClient

            client: Any = AsyncMongoClient(url, **with_default_timeouts(url, client_options))
            adapter = MongoStateAdapter(
                client,
                database=database,
                collection_prefix=collection_prefix,
                owns_client=True,
                retries=retries,
            )
            try:
                await adapter._check_topology()
            except BaseException:
                await client.close()
                raise
            return adapter

        return Opening(open)

    # -- plumbing ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StateAdapterClosedError()

    async def _check_topology(self) -> None:
        """Refuse a standalone server (no multi-document transactions), once per adapter."""
        if self._topology_checked:
            return
        hello = await self.client.admin.command("hello")
        if "setName" not in hello and hello.get("msg") != "isdbgrid":
            host = hello.get("me") or ",".join(f"{h}:{p}" for h, p in self.client.nodes) or "?"
            raise StandaloneServerError(str(host))
        self._topology_checked = True

    async def _in_tx(self, tx: Any | None, operation: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        self._check_open()
        if tx is None:
            await self._check_topology()
            return await self.sessions.own(operation, fn)
        if not self.sessions.fresh(tx):
            return await self.sessions.run(tx, lambda s: self._flushed(s, fn))
        # Nothing ran in this transaction yet (but the inserts deferred by create_jobs, which
        # are replayed): a conflict is met by starting it again, which loses nothing.
        attempt = 0
        while True:
            try:
                return await self.sessions.run(tx, lambda s: self._flushed(s, fn))
            except PyMongoError as exc:
                attempt += 1
                if not is_transient(exc) or attempt >= _CONTENDED_RETRIES:
                    raise
            await asyncio.sleep(random.uniform(0, 0.002 * min(attempt, 10)))
            await self.sessions.restart(tx)

    async def _flushed(self, s: Any, fn: Callable[[Any], Awaitable[T]]) -> T:
        await self._flush(s, self.sessions.state(s))
        return await fn(s)

    async def _flush(self, s: Any, state: Any) -> None:
        """Insert the chain starts that create_jobs deferred in this transaction."""
        if state.written < len(state.deferred):
            docs = state.deferred[state.written :]
            state.written = len(state.deferred)
            try:
                await self.jobs.insert_many(docs, ordered=True, session=s)
            except (BulkWriteError, DuplicateKeyError) as exc:
                taken_id = _duplicate_id(exc)
                if taken_id is not None:
                    raise DuplicateJobIdError(taken_id) from exc
                raise

    async def _now(self, s: Any) -> datetime:
        """The server's clock, read once per transaction (as PostgreSQL's ``now()``)."""
        state = self.sessions.state(s)
        if state.now is None:
            state.now = await self._clock()
        return state.now

    async def _find(
        self,
        s: Any,
        match: dict[str, Any],
        *,
        sort: list[tuple[str, int]] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        pipeline: list[dict[str, Any]] = [{"$match": match}]
        if sort:
            pipeline.append({"$sort": dict(sort)})
        if limit is not None:
            pipeline.append({"$limit": limit})
        cursor = await self.jobs.aggregate(pipeline, session=s)
        return list(await cursor.to_list())

    async def _jobs(self, s: Any, ids: Sequence[str]) -> dict[str, StoredJob]:
        if not ids:
            return {}
        now = await self._now(s)
        docs = await self._find(s, {"_id": {"$in": oids(ids)}})
        return {str(d["_id"]): job_from_doc(d, now) for d in docs}

    async def _chains(self, s: Any, chain_ids: Sequence[str]) -> dict[str, StoredChain]:
        """The chains (root and tail) among ``chain_ids`` that exist."""
        if not chain_ids:
            return {}
        now = await self._now(s)
        cursor = await self.jobs.aggregate(
            [
                {"$match": {"_id": {"$in": oids(chain_ids)}, "chain_index": 0}},
                *self._tail_lookup(),
            ],
            session=s,
        )
        return {str(d["_id"]): self._chain(d, now) for d in await cursor.to_list()}

    def _tail_lookup(self) -> list[dict[str, Any]]:
        return [
            {
                "$lookup": {
                    "from": self.names.jobs,
                    "localField": "_id",
                    "foreignField": "chain_id",
                    "pipeline": [{"$sort": {"chain_index": -1}}, {"$limit": 1}],
                    "as": "_tail",
                }
            }
        ]

    @staticmethod
    def _chain(doc: dict[str, Any], now: datetime) -> StoredChain:
        tail_doc = doc.pop("_tail")[0]
        root = job_from_doc(doc, now)
        tail = root if tail_doc["_id"] == doc["_id"] else job_from_doc(tail_doc, now)
        return StoredChain(root=root, tail=tail)

    # -- lifecycle and transactions ---------------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        self._check_open()
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        await self._check_topology()
        async with self.sessions.transaction() as session:
            yield session

    def savepoint(self, tx: Any) -> AbstractAsyncContextManager[Any]:
        """MongoDB has no savepoints: the block runs in ``tx`` itself, and if it raises the whole
        transaction is marked aborted (it can then only end, raising
        :class:`~queuert.errors.TransactionAbortedError`), so its work can never commit half-done.
        ``capabilities.savepoints`` is False."""
        self._check_open()
        return self._savepoint(tx)

    @asynccontextmanager
    async def _savepoint(self, tx: Any) -> AsyncIterator[Any]:
        state = self.sessions.state(tx)
        try:
            yield tx
        except BaseException:
            state.aborted = True
            raise

    async def poison(self, tx: Any) -> None:
        """Make a command fail inside ``tx`` (a duplicate key), as a caller that swallows the error
        would; MongoDB then aborts the transaction. For error-path tests."""
        with suppress(Exception):
            await self.sessions.run(
                tx, lambda s: self.meta.insert_one({"_id": CLOCK_ID}, session=s)
            )

    async def migrate(self) -> MigrationResult:
        """Create or upgrade the collections and indexes (see :mod:`queuert_mongodb._schema`)."""
        self._check_open()
        await self._check_topology()
        return await run_migrations(self.db, self.names)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self.client.close()

    async def __aenter__(self) -> MongoStateAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- creating ---------------------------------------------------------------------------------

    async def create_jobs(
        self, jobs: Sequence[NewJob], *, tx: Any | None = None
    ) -> list[CreatedJob]:
        self._check_open()
        if not jobs:
            return []
        return await self._in_tx(tx, "create_jobs", lambda s: self._create(list(jobs), s))

    async def _create(self, jobs: list[NewJob], s: Any) -> list[CreatedJob]:
        now = await self._now(s)
        results: list[CreatedJob | None] = [None] * len(jobs)
        # continuations already made (idempotent continuation)
        positions = [(oid(j.chain_id), j.chain_index) for j in jobs if j.chain_id is not None]
        existing: dict[tuple[str, int], StoredJob] = {}
        if positions:
            docs = await self._find(
                s, {"$or": [{"chain_id": c, "chain_index": i} for c, i in positions]}
            )
            for d in docs:
                existing[(str(d["chain_id"]), d["chain_index"])] = job_from_doc(d, now)
        # deduplication: lock each (chain type, key) first, so concurrent starts serialise
        keys = list(
            dict.fromkeys(
                (j.chain_type_name, j.deduplication.key)
                for j in jobs
                if j.chain_id is None and j.deduplication is not None
            )
        )
        if keys:
            # the lock documents exist before the transaction writes them (two transactions
            # inserting one would fail with a duplicate key instead of a retryable conflict)
            for t, k in keys:
                with suppress(DuplicateKeyError):
                    await self.locks.update_one(
                        {"_id": {"t": t, "k": k}}, {"$setOnInsert": {"n": 0}}, upsert=True
                    )
            await self.locks.bulk_write(
                [UpdateOne({"_id": {"t": t, "k": k}}, {"$inc": {"n": 1}}) for t, k in keys],
                ordered=True,
                session=s,
            )
        state = self.sessions.state(s)
        # caller-supplied ids that another job has (in this batch, or stored): read outside the
        # transaction while nothing ran in it, so that it stays restartable (an insert that
        # commits meanwhile is caught by the unique _id)
        taken: set[str] = set()
        given = [j.id for j in jobs if not j.fresh_id]
        if given:
            where = None if self.sessions.fresh(s) else s
            taken = {str(d["_id"]) for d in await self._find(where, {"_id": {"$in": oids(given)}})}
            taken.update(str(d["_id"]) for d in state.deferred)
        leaders: dict[tuple[str, str], StoredJob] = {}
        docs_to_insert: list[dict[str, Any]] = []
        inserted: list[tuple[int, dict[str, Any]]] = []
        for i, new in enumerate(jobs):
            if new.chain_id is not None:
                found = existing.get((new.chain_id, new.chain_index))
                if found is not None:
                    results[i] = CreatedJob(job=found, deduplicated=True)
                    continue
            elif new.deduplication is not None:
                key = (new.chain_type_name, new.deduplication.key)
                leader = leaders.get(key)
                if leader is None:
                    leader = await self._dedup_match(new, now, s)
                if leader is not None:
                    leaders[key] = leader
                    results[i] = CreatedJob(job=leader, deduplicated=True)
                    continue
            if new.id in taken:  # stored already, or earlier in this batch
                raise DuplicateJobIdError(new.id)
            taken.add(new.id)
            job_oid = oid(new.id)
            at = millis(scheduled_at(new.schedule, now))
            doc: dict[str, Any] = {
                "_id": job_oid,
                "type_name": new.type_name,
                "chain_id": job_oid if new.chain_id is None else oid(new.chain_id),
                "chain_type_name": new.chain_type_name,
                "chain_index": new.chain_index,
                "input": new.input_json(),
                "output": None,
                "outcome": None,
                "created_at": now,
                "scheduled_at": at,
                "completed_at": None,
                "completed_by": None,
                "succeeded_by_job_id": None,
                "attempt": 0,
                "last_attempt_at": None,
                "last_attempt_error": None,
                "leased_by": None,
                "leased_until": None,
                "blocked": False,
                "deduplication_key": (
                    new.deduplication.key
                    if new.chain_id is None and new.deduplication is not None
                    else None
                ),
                "chain_trace_context": new.chain_trace_context,
                "trace_context": new.trace_context,
                "priority": new.priority,
                "limit_key": new.limit_key,
            }
            if new.chain_id is None:
                doc["chain_open"] = True
            docs_to_insert.append(doc)
            inserted.append((i, doc))
            if new.chain_id is None and new.deduplication is not None:
                key = (new.chain_type_name, new.deduplication.key)
                leaders[key] = job_from_doc(doc, now)
            elif new.chain_id is not None:
                existing[(new.chain_id, new.chain_index)] = job_from_doc(doc, now)
        if docs_to_insert and state.opened_here and not positions and not keys:
            # chain starts only, in a transaction this adapter opened: written by the next
            # command or the commit (see _flush)
            state.deferred.extend(docs_to_insert)
        elif docs_to_insert:
            try:
                await self.jobs.insert_many(docs_to_insert, ordered=True, session=s)
            except (BulkWriteError, DuplicateKeyError) as exc:
                taken_id = _duplicate_id(exc)
                if taken_id is not None:
                    raise DuplicateJobIdError(taken_id) from exc
                if not _duplicate_key(exc):
                    raise
                # a concurrent transaction took one of these chain positions: run again
                raise PyMongoError(
                    "a concurrent transaction inserted a job at the same chain position",
                    error_labels=[TRANSIENT],
                ) from exc
        for i, doc in inserted:
            results[i] = CreatedJob(job=job_from_doc(doc, now), deduplicated=False)
        return [r for r in results if r is not None]

    async def _dedup_match(self, new: NewJob, now: datetime, s: Any) -> StoredJob | None:
        dedup = new.deduplication
        assert dedup is not None
        match: dict[str, Any] = {
            "chain_type_name": new.chain_type_name,
            "deduplication_key": dedup.key,
            "chain_index": 0,
        }
        if dedup.scope == "open":
            match["chain_open"] = True
        if dedup.window is not None:
            match["created_at"] = {"$gte": now - dedup.window}
        if dedup.exclude_chain_ids:
            match["_id"] = {"$nin": oids(dedup.exclude_chain_ids)}
        docs = await self._find(
            s, match, sort=[("created_at", DESCENDING), ("_id", DESCENDING)], limit=1
        )
        return job_from_doc(docs[0], now) if docs else None

    async def add_blockers(
        self,
        links: Sequence[tuple[str, Sequence[str]]],
        *,
        trace_contexts: Sequence[Sequence[str | None]] | None = None,
        tx: Any | None = None,
    ) -> list[BlockersAdded]:
        self._check_open()
        if not links:
            return []
        plan: list[tuple[str, list[str], list[str | None]]] = []
        for i, (job_id, chain_ids) in enumerate(links):
            chains = list(chain_ids)
            contexts: list[str | None] = (
                list(trace_contexts[i]) if trace_contexts is not None else [None] * len(chains)
            )
            plan.append((job_id, chains, contexts))
        return await self._in_tx(tx, "add_blockers", lambda s: self._add_blockers(plan, s))

    async def _add_blockers(
        self, plan: list[tuple[str, list[str], list[str | None]]], s: Any
    ) -> list[BlockersAdded]:
        now = await self._now(s)
        chain_ids = list(dict.fromkeys(c for _, chains, _ in plan for c in chains))
        job_ids = list(dict.fromkeys(job_id for job_id, _, _ in plan))
        # "Lock" each blocker chain: a write to its first job, which every close of the chain
        # writes too, so a chain closing concurrently makes one of the two transactions conflict.
        if chain_ids:
            await self.jobs.update_many(
                {"_id": {"$in": oids(chain_ids)}, "chain_index": 0},
                {"$inc": {"lk": 1}},
                session=s,
            )
        roots = {
            str(d["_id"]): d
            for d in await self._find(s, {"_id": {"$in": oids(chain_ids)}, "chain_index": 0})
        }
        found = {str(d["_id"]) for d in await self._find(s, {"_id": {"$in": oids(job_ids)}})}
        for job_id, chains, _ in plan:
            if job_id not in found:
                raise JobNotFoundError(job_id)
            for chain_id in chains:
                if chain_id not in roots:
                    raise ChainNotFoundError(chain_id)
        updates: list[UpdateOne] = []
        opened: list[tuple[list[str], list[str | None]]] = []
        for job_id, chains, contexts in plan:
            entries: list[dict[str, Any]] = []
            open_ids: list[str] = []
            chain_contexts: list[str | None] = []
            for chain_id, context in zip(chains, contexts, strict=True):
                root = roots[chain_id]
                is_open = bool(root.get("chain_open", True))
                entries.append({"c": root["_id"], "t": context, "o": is_open})
                chain_contexts.append(root.get("chain_trace_context"))
                if is_open and chain_id not in open_ids:
                    open_ids.append(chain_id)
            update: dict[str, Any] = {"$push": {"blockers": {"$each": entries}}}
            if open_ids:
                update["$set"] = {"blocked": True}
            updates.append(UpdateOne({"_id": oid(job_id)}, update))
            opened.append((open_ids, chain_contexts))
        if updates:
            await self.jobs.bulk_write(updates, ordered=True, session=s)
        docs = {str(d["_id"]): d for d in await self._find(s, {"_id": {"$in": oids(job_ids)}})}
        return [
            BlockersAdded(
                job=job_from_doc(docs[job_id], now),
                open_blocker_chain_ids=open_ids,
                blocker_chain_trace_contexts=ctx,
            )
            for (job_id, _, _), (open_ids, ctx) in zip(plan, opened, strict=True)
        ]

    # -- reading ----------------------------------------------------------------------------------

    async def get_job(
        self, job_id: str, *, lock: bool = False, tx: Any | None = None
    ) -> StoredJob | None:
        self._check_open()

        async def read(s: Any) -> StoredJob | None:
            now = await self._now(s)
            if lock:
                doc = await self.jobs.find_one_and_update(
                    {"_id": oid(job_id)}, {"$inc": {"lk": 1}}, return_document=True, session=s
                )
            else:
                doc = await self.jobs.find_one({"_id": oid(job_id)}, session=s)
            return None if doc is None else job_from_doc(doc, now)

        return await self._in_tx(tx, "get_job", read)

    async def get_chain(
        self, chain_id: str, *, lock: bool = False, tx: Any | None = None
    ) -> StoredChain | None:
        self._check_open()

        async def read(s: Any) -> StoredChain | None:
            chains = await self._chains(s, [chain_id])
            chain = chains.get(chain_id)
            if chain is None or not lock:
                return chain
            # lock the tail (a write), then read the chain again: the write conflicts with any
            # change made to the tail since this transaction's snapshot
            await self.jobs.update_one({"_id": oid(chain.tail.id)}, {"$inc": {"lk": 1}}, session=s)
            return (await self._chains(s, [chain_id])).get(chain_id)

        return await self._in_tx(tx, "get_chain", read)

    async def get_job_blockers(self, job_id: str, *, tx: Any | None = None) -> list[StoredChain]:
        self._check_open()

        async def read(s: Any) -> list[StoredChain]:
            doc = await self.jobs.find_one({"_id": oid(job_id)}, {"blockers": 1}, session=s)
            if doc is None or not doc.get("blockers"):
                return []
            ordered = [str(b["c"]) for b in doc["blockers"]]
            chains = await self._chains(s, list(dict.fromkeys(ordered)))
            return [chains[c] for c in ordered if c in chains]

        return await self._in_tx(tx, "get_job_blockers", read)

    async def next_due(
        self, type_names: Sequence[str], *, tx: Any | None = None
    ) -> timedelta | None:
        self._check_open()
        if not type_names:
            return None

        async def read(s: Any) -> timedelta | None:
            now = await self._now(s)
            docs = await self._find(
                s,
                {"type_name": {"$in": list(type_names)}, **_CLAIMABLE},
                sort=[("scheduled_at", ASCENDING)],
                limit=1,
            )
            if not docs:
                return None
            due = docs[0]["scheduled_at"]
            if not isinstance(due, datetime):  # a date Python cannot read: due, a claim fails it
                return timedelta(0)
            return max(due - now, timedelta(0))

        return await self._in_tx(tx, "next_due", read)

    async def list_chains(
        self,
        filter: ChainFilter,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: Any | None = None,
    ) -> Page[StoredChain]:
        self._check_open()

        async def read(s: Any) -> Page[StoredChain]:
            now = await self._now(s)
            match: dict[str, Any] = {"chain_index": 0}
            ands: list[dict[str, Any]] = []
            if filter.type_names is not None:
                match["type_name"] = {"$in": list(filter.type_names)}
            if filter.status is not None:
                match["chain_open"] = filter.status == "open"
            if filter.chain_ids is not None:
                ands.append({"_id": {"$in": oids(filter.chain_ids)}})
            if filter.job_ids is not None:
                members = [
                    d["chain_id"]
                    for d in await self.jobs.find(
                        {"_id": {"$in": oids(filter.job_ids)}}, {"chain_id": 1}, session=s
                    ).to_list()
                ]
                ands.append({"_id": {"$in": members}})
            if filter.deduplication_keys is not None:
                match["deduplication_key"] = {"$in": list(filter.deduplication_keys)}
            created: dict[str, Any] = {}
            if filter.created_from is not None:
                created["$gte"] = filter.created_from
            if filter.created_to is not None:
                created["$lt"] = filter.created_to
            if created:
                match["created_at"] = created
            if cursor is not None:
                at, after_id = decode_chains_cursor(cursor)
                ands.append(_after(order, "created_at", at, after_id))
            if ands:
                match["$and"] = ands
            direction = ASCENDING if _asc(order) else DESCENDING
            pipeline: list[dict[str, Any]] = [{"$match": match}]
            if filter.root_only:
                pipeline.append(
                    {
                        "$lookup": {
                            "from": self.names.jobs,
                            "localField": "_id",
                            "foreignField": "blockers.c",
                            "pipeline": [{"$limit": 1}, {"$project": {"_id": 1}}],
                            "as": "_waiting",
                        }
                    }
                )
                pipeline.append({"$match": {"_waiting": {"$size": 0}}})
                pipeline.append({"$project": {"_waiting": 0}})
            pipeline += [
                {"$sort": {"created_at": direction, "_id": direction}},
                {"$limit": fetch_size(limit)},
                *self._tail_lookup(),
            ]
            docs = await (await self.jobs.aggregate(pipeline, session=s)).to_list()
            return chains_page([self._chain(d, now) for d in docs], limit)

        return await self._in_tx(tx, "list_chains", read)

    async def list_jobs(
        self,
        filter: JobFilter,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: Any | None = None,
    ) -> Page[StoredJob]:
        self._check_open()

        async def read(s: Any) -> Page[StoredJob]:
            now = await self._now(s)
            match: dict[str, Any] = {}
            ands: list[dict[str, Any]] = []
            if filter.type_names is not None:
                match["type_name"] = {"$in": list(filter.type_names)}
            if filter.job_ids is not None:
                ands.append({"_id": {"$in": oids(filter.job_ids)}})
            if filter.chain_ids is not None:
                match["chain_id"] = {"$in": oids(filter.chain_ids)}
            if filter.chain_type_names is not None:
                match["chain_type_name"] = {"$in": list(filter.chain_type_names)}
            created: dict[str, Any] = {}
            if filter.created_from is not None:
                created["$gte"] = filter.created_from
            if filter.created_to is not None:
                created["$lt"] = filter.created_to
            if created:
                match["created_at"] = created
            if cursor is not None:
                at, after_id = decode_jobs_cursor(cursor)
                ands.append(_after(order, "created_at", at, after_id))
            if ands:
                match["$and"] = ands
            pipeline: list[dict[str, Any]] = [{"$match": match}]
            if filter.statuses is not None:
                pipeline.append(
                    {"$match": {"$expr": {"$in": [status_expression(now), list(filter.statuses)]}}}
                )
            direction = ASCENDING if _asc(order) else DESCENDING
            pipeline += [
                {"$sort": {"created_at": direction, "_id": direction}},
                {"$limit": fetch_size(limit)},
            ]
            docs = await (await self.jobs.aggregate(pipeline, session=s)).to_list()
            return jobs_page([job_from_doc(d, now) for d in docs], limit)

        return await self._in_tx(tx, "list_jobs", read)

    async def list_chain_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "asc",
        cursor: str | None = None,
        limit: int = 50,
        tx: Any | None = None,
    ) -> Page[StoredJob]:
        self._check_open()

        async def read(s: Any) -> Page[StoredJob]:
            now = await self._now(s)
            match: dict[str, Any] = {"chain_id": oid(chain_id)}
            if cursor is not None:
                index = decode_chain_jobs_cursor(cursor)
                match["chain_index"] = {("$gt" if _asc(order) else "$lt"): index}
            docs = await self._find(
                s,
                match,
                sort=[("chain_index", ASCENDING if _asc(order) else DESCENDING)],
                limit=fetch_size(limit),
            )
            return chain_jobs_page([job_from_doc(d, now) for d in docs], limit)

        return await self._in_tx(tx, "list_chain_jobs", read)

    async def list_blocked_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: Any | None = None,
    ) -> Page[StoredJob]:
        self._check_open()

        async def read(s: Any) -> Page[StoredJob]:
            now = await self._now(s)
            match: dict[str, Any] = {"blockers.c": oid(chain_id)}
            if cursor is not None:
                at, after_id = decode_blocked_jobs_cursor(cursor)
                match.update(_after(order, "created_at", at, after_id))
            direction = ASCENDING if _asc(order) else DESCENDING
            docs = await self._find(
                s,
                match,
                sort=[("created_at", direction), ("_id", direction)],
                limit=fetch_size(limit),
            )
            return blocked_jobs_page([job_from_doc(d, now) for d in docs], limit)

        return await self._in_tx(tx, "list_blocked_jobs", read)

    async def get_queue_stats(
        self, type_names: Sequence[str] | None = None, *, tx: Any | None = None
    ) -> list[QueueStats]:
        self._check_open()

        async def read(s: Any) -> list[QueueStats]:
            now = await self._now(s)
            match: dict[str, Any] = {"outcome": None}
            if type_names is not None:
                match["type_name"] = {"$in": list(type_names)}
            leased = {"$ne": [{"$ifNull": ["$leased_until", None]}, None]}
            free = {"$not": [leased]}
            ready = {"$and": [free, {"$ne": ["$blocked", True]}, {"$lte": ["$scheduled_at", now]}]}

            def count(cond: Any) -> dict[str, Any]:
                return {"$sum": {"$cond": [cond, 1, 0]}}

            pipeline = [
                {"$match": match},
                {
                    "$group": {
                        "_id": "$type_name",
                        "ready": count(ready),
                        "scheduled": count(
                            {
                                "$and": [
                                    free,
                                    {"$ne": ["$blocked", True]},
                                    {"$gt": ["$scheduled_at", now]},
                                ]
                            }
                        ),
                        "blocked": count({"$and": [free, {"$eq": ["$blocked", True]}]}),
                        "running": count(leased),
                        "expired": count({"$and": [leased, {"$lte": ["$leased_until", now]}]}),
                        "oldest": {"$min": {"$cond": [ready, "$scheduled_at", None]}},
                    }
                },
            ]
            stats = []
            for d in await (await self.jobs.aggregate(pipeline, session=s)).to_list():
                oldest = d.get("oldest")
                if not isinstance(oldest, datetime):  # none, or a time edited into another type
                    oldest = None
                stats.append(
                    QueueStats(
                        type_name=d["_id"],
                        ready=d["ready"],
                        oldest_ready_age=(
                            None if oldest is None else max(now - oldest, timedelta(0))
                        ),
                        scheduled=d["scheduled"],
                        blocked=d["blocked"],
                        running=d["running"],
                        lease_expired=d["expired"],
                    )
                )
            return queue_stats_in_order(stats, type_names)

        return await self._in_tx(tx, "get_queue_stats", read)

    async def get_job_activity(
        self, *, window: timedelta, buckets: int, tx: Any | None = None
    ) -> JobActivity:
        self._check_open()

        async def read(s: Any) -> JobActivity:
            now = await self._now(s)
            since = now - window
            width_ms = window / timedelta(milliseconds=1) / buckets
            status = status_expression(now)
            recent = {"completed_at": {"$gte": since}}
            pipeline = [
                {"$match": {"$or": [{"outcome": None}, recent]}},
                {
                    "$facet": {
                        "counts": [
                            {"$group": {"_id": {"t": "$type_name", "s": status}, "n": {"$sum": 1}}}
                        ],
                        "closed": [
                            {"$match": recent},
                            {
                                "$group": {
                                    "_id": {
                                        "i": {
                                            "$floor": {
                                                "$divide": [
                                                    {"$subtract": ["$completed_at", since]},
                                                    width_ms,
                                                ]
                                            }
                                        },
                                        "s": status,
                                    },
                                    "n": {"$sum": 1},
                                }
                            },
                        ],
                        "workers": [
                            {"$match": {**recent, "completed_by": {"$ne": None}}},
                            {
                                "$group": {
                                    "_id": "$completed_by",
                                    "n": {"$sum": 1},
                                    "last": {"$max": "$completed_at"},
                                }
                            },
                        ],
                    }
                },
            ]
            (facets,) = await (await self.jobs.aggregate(pipeline, session=s)).to_list()
            counts = sorted(
                (
                    StatusCount(type_name=d["_id"]["t"], status=d["_id"]["s"], count=d["n"])
                    for d in facets["counts"]
                ),
                key=lambda c: (c.type_name, c.status),
            )
            closed = {(int(d["_id"]["i"]), d["_id"]["s"]): d["n"] for d in facets["closed"]}
            workers = sorted(
                (
                    WorkerActivity(worker_id=d["_id"], closed=d["n"], last_closed_at=d["last"])
                    for d in facets["workers"]
                ),
                key=lambda w: w.worker_id,
            )
            return JobActivity(
                now=now,
                since=since,
                counts=counts,
                buckets=activity_buckets(since, window, buckets, closed),
                workers=workers,
            )

        return await self._in_tx(tx, "get_job_activity", read)

    # -- processing -------------------------------------------------------------------------------

    async def _skipping(
        self, tx: Any | None, operation: str, fn: Callable[[Any, int], Awaitable[T]]
    ) -> T:
        """``fn(session, attempt)`` in a transaction of its own; if it meets a write conflict (a row
        another transaction holds), ``fn(None, -1)`` instead, which takes rows one transaction each
        and skips those that conflict: MongoDB's "skip locked". In the caller's transaction
        ``fn(tx, attempt)``, started again (``attempt`` + 1) after a conflict while nothing else ran
        in it; ``attempt`` > 0 asks ``fn`` to spread its picks over more candidates."""
        if tx is not None:
            tries = 0

            async def counted(s: Any) -> T:
                nonlocal tries
                tries += 1
                return await fn(s, tries - 1)

            return await self._in_tx(tx, operation, counted)
        self._check_open()
        await self._check_topology()
        try:
            async with self.client.start_session() as session:
                await session.start_transaction()
                self.sessions.state(session)
                try:
                    result = await fn(session, 0)
                except BaseException:
                    with suppress(PyMongoError):
                        await session.abort_transaction()
                    raise
                await self.sessions.commit(session, operation)
                return result
        except PyMongoError as exc:
            if not is_transient(exc):
                raise
        return await fn(None, -1)

    async def _one_each(
        self, ids: Sequence[Any], fn: Callable[[Any, Any], Awaitable[T | None]]
    ) -> list[T]:
        """``fn(session, id)`` for each id in a transaction of its own; conflicting ones skipped."""
        done: list[T] = []
        for value in ids:
            self._check_open()
            try:
                async with self.client.start_session() as session:
                    await session.start_transaction()
                    self.sessions.state(session)
                    try:
                        result = await fn(session, value)
                    except BaseException:
                        with suppress(PyMongoError):
                            await session.abort_transaction()
                        raise
                    await self.sessions.commit(session, "claim")
            except PyMongoError as exc:
                if is_transient(exc):
                    continue  # held by another transaction: skip it
                raise
            if result is not None:
                done.append(result)
        return done

    async def claim_jobs(
        self,
        *,
        leases: Mapping[str, timedelta],
        limit: int,
        worker_id: str,
        limits: Mapping[str, ConcurrencyLimit] | None = None,
        tx: Any | None = None,
    ) -> ClaimResult:
        self._check_open()
        bounds = {t: b for t, b in (limits or {}).items() if t in leases and b.is_set}
        if bounds and limit > 0:
            try:
                return await self._in_tx(
                    tx,
                    "claim_jobs",
                    lambda s: self._claim_limited(s, dict(leases), limit, worker_id, bounds),
                )
            except TransactionRetriesExhaustedError:
                # other claimers of these types kept committing first: nothing taken this time
                return ClaimResult(jobs=[], has_more=True)
        if not leases or limit <= 0:
            return (
                ClaimResult(jobs=[], has_more=False)
                if not leases
                else await self._has_any(leases, tx)
            )
        types = list(leases)

        async def candidates(s: Any | None, n: int) -> tuple[datetime, list[dict[str, Any]]]:
            now = await self._now(s) if s is not None else await self._clock()
            docs = await (
                await self.jobs.aggregate(
                    [
                        {
                            "$match": {
                                "type_name": {"$in": types},
                                **_CLAIMABLE,
                                "scheduled_at": {"$lte": now},
                            }
                        },
                        {"$sort": {"priority": -1, "scheduled_at": 1, "_id": 1}},
                        {"$limit": n},
                        {"$project": {"_id": 1, "type_name": 1}},
                    ],
                    session=s,
                )
            ).to_list()
            return now, docs

        def claim_update(now: datetime, type_name: str) -> dict[str, Any]:
            return {
                "$set": {
                    "leased_by": worker_id,
                    "leased_until": until(now, leases[type_name]),
                    "last_attempt_at": now,
                },
                "$inc": {"attempt": 1},
            }

        async def run(s: Any | None, attempt: int) -> ClaimResult:
            if attempt >= 0:
                now, docs = await candidates(s, limit + 1 + (3 * limit if attempt else 0))
                # after a conflict, spread over more candidates than the oldest ones the other
                # claimers go for
                take = docs[:limit] if not attempt else random.sample(docs, min(limit, len(docs)))
                if not take:
                    return ClaimResult(jobs=[], has_more=False)
                by_type: dict[str, list[ObjectId]] = {}
                for d in take:
                    by_type.setdefault(d["type_name"], []).append(d["_id"])
                await self.jobs.bulk_write(
                    [
                        UpdateMany({"_id": {"$in": ids}, **_CLAIMABLE}, claim_update(now, t))
                        for t, ids in by_type.items()
                    ],
                    ordered=True,
                    session=s,
                )
                claimed = await self._find(
                    s,
                    {"_id": {"$in": [d["_id"] for d in take]}, "leased_by": worker_id},
                    sort=[("priority", -1), ("scheduled_at", 1), ("_id", 1)],
                )
                return ClaimResult(
                    jobs=[job_from_doc(d, now, "running") for d in claimed],
                    has_more=len(docs) > len(take),
                )
            _, docs = await candidates(None, limit + 1)

            async def one(s: Any, d: dict[str, Any]) -> StoredJob | None:
                now = await self._now(s)
                doc = await self.jobs.find_one_and_update(
                    {"_id": d["_id"], **_CLAIMABLE, "scheduled_at": {"$lte": now}},
                    claim_update(now, d["type_name"]),
                    return_document=True,
                    session=s,
                )
                return None if doc is None else job_from_doc(doc, now, "running")

            jobs = await self._one_each(docs[:limit], one)
            return ClaimResult(jobs=jobs, has_more=len(docs) > len(jobs))

        return await self._skipping(tx, "claim_jobs", run)

    async def _claim_limited(
        self,
        s: Any,
        leases: dict[str, timedelta],
        limit: int,
        worker_id: str,
        bounds: dict[str, ConcurrencyLimit],
    ) -> ClaimResult:
        """A claim under concurrency limits, in one transaction. It first increments a counter
        document per limited type: a claim of the same type that committed after this
        transaction's snapshot, or is still running, makes that write fail (a write conflict,
        and the transaction is run again), so once it succeeds the running jobs counted in the
        snapshot are every running job of those types (a release since only lowers them). Then
        it takes the ready candidates that fit, in claim order
        (:func:`~queuert.limits.take_within_limits`)."""
        limited = sorted(bounds)
        for type_name in limited:
            await self.meta.update_one(
                {"_id": {"limit": type_name}}, {"$inc": {"claims": 1}}, upsert=True, session=s
            )
        now = await self._now(s)
        running_types: dict[str, int] = {}
        running_keys: dict[tuple[str, str], int] = {}
        counted = await (
            await self.jobs.aggregate(
                [
                    {
                        "$match": {
                            "type_name": {"$in": limited},
                            **_OPEN,
                            "leased_until": {"$ne": None},
                        }
                    },
                    {"$group": {"_id": {"t": "$type_name", "k": "$limit_key"}, "n": {"$sum": 1}}},
                ],
                session=s,
            )
        ).to_list()
        for row in counted:
            type_name, key = row["_id"]["t"], row["_id"].get("k")
            running_types[type_name] = running_types.get(type_name, 0) + row["n"]
            if key is not None:
                running_keys[(type_name, key)] = row["n"]
        skip: list[dict[str, Any]] = []
        types: list[str] = []
        for type_name in leases:
            bound = bounds.get(type_name)
            if (
                bound is not None
                and bound.limit is not None
                and running_types.get(type_name, 0) >= bound.limit
            ):
                continue  # full: none of its jobs fits
            types.append(type_name)
            if bound is not None and bound.key_limit is not None:
                full = [
                    k
                    for (t, k), n in running_keys.items()
                    if t == type_name and n >= bound.key_limit
                ]
                if full:
                    skip.append({"type_name": type_name, "limit_key": {"$in": full}})
        if not types:
            return ClaimResult(jobs=[], has_more=False)
        # only a key limit skips candidates: only then look further than limit + 1
        keyed = any(b.key_limit is not None for t, b in bounds.items() if t in types)
        window = 4 * limit + 1 if keyed else limit + 1
        match: dict[str, Any] = {
            "type_name": {"$in": types},
            **_CLAIMABLE,
            "scheduled_at": {"$lte": now},
        }
        if skip:
            match["$nor"] = skip
        docs = await (
            await self.jobs.aggregate(
                [
                    {"$match": match},
                    {"$sort": {"priority": -1, "scheduled_at": 1, "_id": 1}},
                    {"$limit": window},
                    {"$project": {"_id": 1, "type_name": 1, "limit_key": 1}},
                ],
                session=s,
            )
        ).to_list()
        taken, has_more = take_within_limits(
            ((d["type_name"], d.get("limit_key"), d) for d in docs),
            limits=bounds,
            running_types=running_types,
            running_keys=running_keys,
            want=limit,
        )
        if keyed and len(docs) >= window:
            has_more = True  # more behind the window (the next claim skips the keys now full)
        if not taken:
            return ClaimResult(jobs=[], has_more=has_more)
        by_type: dict[str, list[ObjectId]] = {}
        for d in taken:
            by_type.setdefault(d["type_name"], []).append(d["_id"])
        await self.jobs.bulk_write(
            [
                UpdateMany(
                    {"_id": {"$in": ids}, **_CLAIMABLE},
                    {
                        "$set": {
                            "leased_by": worker_id,
                            "leased_until": until(now, leases[t]),
                            "last_attempt_at": now,
                        },
                        "$inc": {"attempt": 1},
                    },
                )
                for t, ids in by_type.items()
            ],
            ordered=True,
            session=s,
        )
        claimed = await self._find(
            s,
            {"_id": {"$in": [d["_id"] for d in taken]}, "leased_by": worker_id},
            sort=[("priority", -1), ("scheduled_at", 1), ("_id", 1)],
        )
        return ClaimResult(
            jobs=[job_from_doc(d, now, "running") for d in claimed], has_more=has_more
        )

    async def _has_any(self, leases: Mapping[str, timedelta], tx: Any | None) -> ClaimResult:
        due = await self.next_due(list(leases), tx=tx)
        return ClaimResult(jobs=[], has_more=due == timedelta(0))

    async def _clock(self) -> datetime:
        """The server's clock, read outside any transaction (so that a transaction in which
        nothing else ran yet stays restartable)."""
        cursor = await self.meta.aggregate(
            [{"$match": {"_id": CLOCK_ID}}, {"$project": {"_id": 0, "now": "$$NOW"}}]
        )
        docs = await cursor.to_list()
        if not docs:
            raise UsageError(
                f"the queuert collections of {self.names.database!r} with prefix "
                f"{self.names.prefix!r} are not set up: run migrate() first"
            )
        now: datetime = docs[0]["now"]
        return now

    async def renew_leases(
        self, leases: Mapping[str, timedelta], *, worker_id: str, tx: Any | None = None
    ) -> LeaseRenewal:
        self._check_open()
        if not leases:
            return LeaseRenewal(renewed={}, lost=[])
        ids = list(leases)
        held: dict[str, Any] = {
            "leased_by": worker_id,
            "outcome": None,
            "leased_until": {"$ne": None},
        }

        async def run(s: Any | None, attempt: int) -> LeaseRenewal:
            if attempt >= 0:
                now = await self._now(s)
                by_duration: dict[timedelta, list[ObjectId]] = {}
                for job_id in ids:
                    by_duration.setdefault(leases[job_id], []).append(oid(job_id))
                await self.jobs.bulk_write(
                    [
                        UpdateMany(
                            {"_id": {"$in": group}, **held},
                            {"$set": {"leased_until": until(now, duration)}},
                        )
                        for duration, group in by_duration.items()
                    ],
                    ordered=True,
                    session=s,
                )
                docs = await self._find(s, {"_id": {"$in": oids(ids)}, **held})
                renewed = {str(d["_id"]): d["leased_until"] for d in docs}
                return LeaseRenewal(
                    renewed={j: renewed[j] for j in ids if j in renewed},
                    lost=[j for j in ids if j not in renewed],
                )
            mine = {
                str(d["_id"]) for d in await self._find(None, {"_id": {"$in": oids(ids)}, **held})
            }

            async def one(s: Any, job_id: str) -> tuple[str, datetime] | None:
                now = await self._now(s)
                doc = await self.jobs.find_one_and_update(
                    {"_id": oid(job_id), **held},
                    {"$set": {"leased_until": until(now, leases[job_id])}},
                    return_document=True,
                    session=s,
                )
                return None if doc is None else (job_id, doc["leased_until"])

            done = dict(await self._one_each(sorted(mine), one))
            # a lease held by another transaction right now (the worker's own atomic attempt)
            # is reported neither renewed nor lost
            return LeaseRenewal(
                renewed={j: done[j] for j in ids if j in done},
                lost=[j for j in ids if j not in mine],
            )

        return await self._skipping(tx, "renew_leases", run)

    async def complete_job(
        self,
        job_id: str,
        *,
        outcome: Outcome,
        worker_id: str | None,
        output: Any = None,
        succeeded_by_job_id: str | None = None,
        error: str | None = None,
        owner: str | None = None,
        tx: Any | None = None,
    ) -> CompleteResult:
        self._check_open()
        completion = Completion(
            job_id,
            outcome=outcome,
            output=output,
            succeeded_by_job_id=succeeded_by_job_id,
            error=error,
        )

        async def run(s: Any) -> CompleteResult:
            results, refusals = await self._complete([completion], worker_id, owner, s)
            result = results[0]
            if result is not None:
                return result
            found, closed_as, leased_by = refusals[0]
            if not found:
                raise JobNotFoundError(job_id)
            if closed_as is not None:
                raise JobAlreadyCompletedError(job_id)
            raise JobTakenByAnotherWorkerError(job_id, owner, leased_by)

        return await self._in_tx(tx, "complete_job", run)

    async def complete_jobs(
        self,
        completions: Sequence[Completion],
        *,
        worker_id: str | None,
        owner: str | None = None,
        tx: Any | None = None,
    ) -> list[CompleteResult | None]:
        self._check_open()
        if not completions:
            return []

        async def run(s: Any) -> list[CompleteResult | None]:
            results, _ = await self._complete(list(completions), worker_id, owner, s)
            return results

        return await self._in_tx(tx, "complete_jobs", run)

    async def _complete(
        self,
        completions: list[Completion],
        worker_id: str | None,
        owner: str | None,
        s: Any,
    ) -> tuple[list[CompleteResult | None], dict[int, tuple[bool, str | None, str | None]]]:
        now = await self._now(s)
        docs = {
            str(d["_id"]): d
            for d in await self._find(s, {"_id": {"$in": oids(c.job_id for c in completions)}})
        }
        refusals: dict[int, tuple[bool, str | None, str | None]] = {}
        results: list[CompleteResult | None] = [None] * len(completions)
        writes: list[UpdateOne] = []
        closing: dict[ObjectId, int] = {}
        for i, c in enumerate(completions):
            doc = docs.get(c.job_id)
            if doc is None:
                refusals[i] = (False, None, None)
                continue
            if doc.get("outcome") is not None or (
                owner is not None and doc.get("leased_by") != owner
            ):
                refusals[i] = (True, doc.get("outcome"), doc.get("leased_by"))
                continue
            error = None if c.outcome == "completed" else (c.error or doc.get("last_attempt_error"))
            changes: dict[str, Any] = {
                "outcome": c.outcome,
                "output": c.output_json() if c.closes_with_output else None,
                "succeeded_by_job_id": (
                    None if c.succeeded_by_job_id is None else oid(c.succeeded_by_job_id)
                ),
                "completed_at": now,
                "completed_by": worker_id,
                "leased_by": None,
                "leased_until": None,
                "last_attempt_error": error,
            }
            # the guard repeats the checks: a change committed since this transaction's snapshot
            # makes the write conflict instead of matching stale data
            writes.append(UpdateOne({"_id": doc["_id"], "outcome": None}, {"$set": changes}))
            doc.update(changes)
            results[i] = CompleteResult(job=job_from_doc(doc, now))
            if c.succeeded_by_job_id is None:
                closing[doc["chain_id"]] = i
        if writes:
            await self.jobs.bulk_write(writes, ordered=True, session=s)
        if closing:
            await self._release(closing, results, now, s)
        return results, refusals

    async def _release(
        self,
        closing: dict[ObjectId, int],
        results: list[CompleteResult | None],
        now: datetime,
        s: Any,
    ) -> None:
        """The chains of ``closing`` closed (when the closed job is their tail): mark them closed on
        their first job and release the jobs that waited for them and wait for no other open chain."""
        chains = list(closing)
        tails = {
            d["_id"]: d["m"]
            for d in await (
                await self.jobs.aggregate(
                    [
                        {"$match": {"chain_id": {"$in": chains}}},
                        {"$group": {"_id": "$chain_id", "m": {"$max": "$chain_index"}}},
                    ],
                    session=s,
                )
            ).to_list()
        }
        really: list[ObjectId] = []
        for chain, i in closing.items():
            result = results[i]
            if result is not None and tails.get(chain) == result.job.chain_index:
                really.append(chain)
        if not really:
            return
        dependents = await self._find(s, {"blockers.c": {"$in": really}})
        closed_set = set(really)
        by: dict[ObjectId, int] = {}
        contexts: dict[int, list[str]] = {}
        freed: list[ObjectId] = []
        for d in dependents:
            for link in d.get("blockers", []):
                if link["c"] in closed_set:
                    position = closing[link["c"]]
                    by[d["_id"]] = max(by.get(d["_id"], -1), position)
                    if link.get("t") is not None:
                        contexts.setdefault(position, []).append(link["t"])
            still_open = any(
                link.get("o") and link["c"] not in closed_set for link in d.get("blockers", [])
            )
            if d.get("blocked") and not still_open and d.get("outcome") is None:
                freed.append(d["_id"])
        mark_links = {
            "$set": {
                "blockers": {
                    "$map": {
                        "input": "$blockers",
                        "as": "b",
                        "in": {
                            "$cond": [
                                {"$in": ["$$b.c", really]},
                                {"$mergeObjects": ["$$b", {"o": False}]},
                                "$$b",
                            ]
                        },
                    }
                }
            }
        }
        recount = {
            "$set": {
                "blocked": {
                    "$anyElementTrue": [{"$map": {"input": "$blockers", "as": "b", "in": "$$b.o"}}]
                }
            }
        }
        writes: list[Any] = [
            UpdateMany({"_id": {"$in": really}, "chain_index": 0}, {"$set": {"chain_open": False}})
        ]
        if dependents:
            writes.append(
                UpdateMany({"_id": {"$in": [d["_id"] for d in dependents]}}, [mark_links, recount])
            )
        if freed:
            writes.append(
                UpdateMany(
                    {"_id": {"$in": freed}},
                    [{"$set": {"scheduled_at": {"$max": ["$scheduled_at", now]}}}],
                )
            )
        await self.jobs.bulk_write(writes, ordered=True, session=s)
        unblocked: dict[int, list[StoredJob]] = {}
        if freed:
            for d in await self._find(
                s, {"_id": {"$in": freed}}, sort=[("created_at", 1), ("_id", 1)]
            ):
                unblocked.setdefault(by[d["_id"]], []).append(job_from_doc(d, now))
        for i in set(closing.values()):
            result = results[i]
            if result is not None and (i in unblocked or i in contexts):
                results[i] = CompleteResult(
                    job=result.job,
                    unblocked=unblocked.get(i, []),
                    blocker_trace_contexts=contexts.get(i, []),
                )

    async def reschedule_job(
        self,
        job_id: str,
        *,
        schedule: Any,
        error: str | None,
        tx: Any | None = None,
    ) -> StoredJob:
        self._check_open()

        async def run(s: Any) -> StoredJob:
            now = await self._now(s)
            changes: dict[str, Any] = {
                "leased_by": None,
                "leased_until": None,
                "scheduled_at": millis(scheduled_at(schedule, now)),
            }
            if error is not None:
                changes["last_attempt_error"] = error
            doc = await self.jobs.find_one_and_update(
                {"_id": oid(job_id)}, {"$set": changes}, return_document=True, session=s
            )
            if doc is None:
                raise JobNotFoundError(job_id)
            return job_from_doc(doc, now)

        return await self._in_tx(tx, "reschedule_job", run)

    async def reap_expired_leases(
        self,
        type_names: Sequence[str],
        *,
        limit: int,
        exclude_job_ids: Sequence[str] = (),
        tx: Any | None = None,
    ) -> list[StoredJob]:
        self._check_open()
        if not type_names or limit <= 0:
            return []
        excluded = oids(exclude_job_ids)

        def expired(now: datetime) -> dict[str, Any]:
            return {
                "type_name": {"$in": list(type_names)},
                "outcome": None,
                "leased_until": {"$ne": None, "$lte": now},
                "_id": {"$nin": excluded},
            }

        def as_reaped(doc: dict[str, Any], now: datetime) -> StoredJob:
            job = job_from_doc(doc, now)
            status = derive_status(
                outcome=None,
                succeeded_by_job_id=None,
                leased_until=None,
                blocked=job.blocked,
                scheduled_at=job.scheduled_at,
                now=now,
            )
            return replace(job, status=status)

        clear = {"$set": {"leased_by": None, "leased_until": None}}

        async def run(s: Any | None, attempt: int) -> list[StoredJob]:
            if attempt >= 0:
                now = await self._now(s)
                docs = await self._find(
                    s, expired(now), sort=[("leased_until", 1), ("_id", 1)], limit=limit
                )
                if not docs:
                    return []
                await self.jobs.update_many(
                    {"_id": {"$in": [d["_id"] for d in docs]}}, clear, session=s
                )
                return [as_reaped(d, now) for d in docs]
            now = await self._clock()
            docs = await self._find(
                None, expired(now), sort=[("leased_until", 1), ("_id", 1)], limit=limit
            )

            async def one(s: Any, d: dict[str, Any]) -> StoredJob | None:
                now = await self._now(s)
                doc = await self.jobs.find_one_and_update(
                    {"_id": d["_id"], **expired(now)}, clear, session=s
                )
                return None if doc is None else as_reaped(doc, now)

            return await self._one_each(docs, one)

        return await self._skipping(tx, "reap_expired_leases", run)

    # -- administration ---------------------------------------------------------------------------

    async def trigger_jobs(self, job_ids: Sequence[str], *, tx: Any | None = None) -> TriggerResult:
        self._check_open()
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return TriggerResult(triggered=[], not_found=[], not_triggerable=[])

        async def run(s: Any) -> TriggerResult:
            now = await self._now(s)
            found = await self._jobs(s, ids)
            not_found = [i for i in ids if i not in found]
            not_triggerable: list[tuple[str, JobStatus]] = [
                (i, found[i].status)
                for i in ids
                if i in found and found[i].status not in ("scheduled", "ready")
            ]
            if not_found or not_triggerable:
                return TriggerResult(
                    triggered=[], not_found=not_found, not_triggerable=not_triggerable
                )
            await self.jobs.update_many(
                {"_id": {"$in": oids(ids)}},
                [{"$set": {"scheduled_at": {"$min": ["$scheduled_at", now]}}}],
                session=s,
            )
            triggered = []
            for i in ids:
                job = found[i]
                if job.scheduled_at > now:
                    job = replace(job, scheduled_at=now, status="ready")
                triggered.append(job)
            return TriggerResult(triggered=triggered, not_found=[], not_triggerable=[])

        return await self._in_tx(tx, "trigger_jobs", run)

    async def delete_chains(
        self, chain_ids: Sequence[str], *, cascade: bool = False, tx: Any | None = None
    ) -> DeleteResult:
        self._check_open()
        ids = list(dict.fromkeys(chain_ids))
        if not ids:
            return DeleteResult(deleted=[], references=[])
        return await self._in_tx(tx, "delete_chains", lambda s: self._delete(ids, cascade, s))

    async def _delete(self, ids: list[str], cascade: bool, s: Any) -> DeleteResult:
        targets: dict[ObjectId, None] = {
            d["_id"]: None
            for d in await self._find(s, {"_id": {"$in": oids(ids)}, "chain_index": 0})
        }
        if not targets:
            return DeleteResult(deleted=[], references=[])
        if cascade:
            frontier = list(targets)
            while frontier:
                found = [
                    d["_id"]
                    for d in await (
                        await self.jobs.aggregate(
                            [
                                {"$match": {"chain_id": {"$in": frontier}}},
                                {"$unwind": "$blockers"},
                                {"$group": {"_id": "$blockers.c"}},
                            ],
                            session=s,
                        )
                    ).to_list()
                ]
                roots = {
                    d["_id"] for d in await self._find(s, {"_id": {"$in": found}, "chain_index": 0})
                }
                frontier = [c for c in found if c in roots and c not in targets]
                targets.update(dict.fromkeys(frontier))
        chain_list = list(targets)
        outside = await self._find(
            s, {"blockers.c": {"$in": chain_list}, "chain_id": {"$nin": chain_list}}
        )
        references: list[BlockerReference] = []
        seen: set[tuple[str, str]] = set()
        for d in outside:
            for link in d.get("blockers", []):
                if link["c"] in targets:
                    key = (str(link["c"]), str(d["_id"]))
                    if key not in seen:
                        seen.add(key)
                        references.append(
                            BlockerReference(chain_id=key[0], referenced_by_job_id=key[1])
                        )
        if references:
            order = {c: i for i, c in enumerate(ids)}
            references.sort(
                key=lambda r: (
                    order.get(r.chain_id, len(order)),
                    r.chain_id,
                    r.referenced_by_job_id,
                )
            )
            return DeleteResult(deleted=[], references=references)
        chains = await self._chains(s, [str(c) for c in chain_list])
        await self.jobs.delete_many({"chain_id": {"$in": chain_list}}, session=s)
        return DeleteResult(deleted=list(chains.values()), references=[])


def _write_errors(exc: PyMongoError) -> list[dict[str, Any]]:
    details = getattr(exc, "details", None) or {}
    if isinstance(exc, BulkWriteError):
        return list(details.get("writeErrors", []))
    return [details]


def _duplicate_key(exc: PyMongoError) -> bool:
    return any(error.get("code") == 11000 for error in _write_errors(exc))


def _duplicate_id(exc: PyMongoError) -> str | None:
    """The job id of a duplicate-key error on ``_id``, if that is what ``exc`` is."""
    for error in _write_errors(exc):
        if error.get("code") == 11000 and set(error.get("keyPattern") or {}) == {"_id"}:
            return str((error.get("keyValue") or {}).get("_id"))
    return None


def _conforms(adapter: MongoStateAdapter) -> StateAdapter[Any]:
    return adapter  # mypy checks that the adapter implements the protocol
