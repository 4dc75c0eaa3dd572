"""Shared helpers of the state adapter suite (not collected as tests).

Every helper goes through the public :class:`~queuert.state.StateAdapter` interface only. Time is
checked with tolerances and ordering assumptions never rely on two operations of one transaction getting
different timestamps (PostgreSQL's ``now()`` is the transaction's start time).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, TypeVar

from queuert.ids import IdPolicy
from queuert.json import JsonValue
from queuert.schedule import Deduplication, Schedule
from queuert.state import (
    ChainFilter,
    ClaimResult,
    CompleteResult,
    JobFilter,
    NewJob,
    Outcome,
    StateAdapter,
    StoredChain,
    StoredJob,
)

from queuert_conformance.applicability import not_applicable
from queuert_conformance.harness import StateHarness

T = TypeVar("T")

HOUR = timedelta(hours=1)
LONG_LEASE = timedelta(minutes=10)
TOLERANCE = timedelta(seconds=10)
"""How far a store timestamp may be from the test's clock (same machine; PG uses transaction start)."""
DEADLOCK_TIMEOUT = 20.0
"""Seconds after which an operation that should finish is declared hung."""
SETTLE = 0.05
"""Seconds a case gives a concurrent task to reach its blocking point. Never needed for a case to pass:
a task that has not got that far yet only makes the check weaker, never wrong."""

TYPE_A = "conformance.alpha"
TYPE_B = "conformance.beta"
TYPE_C = "conformance.gamma"
TYPE_D = "conformance.delta"
WORKER = "worker-a"
OTHER_WORKER = "worker-b"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def whole_second(dt: datetime) -> datetime:
    """A timestamp every backend stores exactly (no sub-second digits)."""
    return dt.replace(microsecond=0)


# -- building jobs ----------------------------------------------------------------------------------
#
# Every id a case hands to the adapter comes from the adapter's own id policy (``adapter.ids``), so an
# adapter whose ids are not UUIDs passes the same cases. See :meth:`Ops.new_job`, :meth:`Ops.next_job`,
# :meth:`Ops.new_id` and :meth:`Ops.unknown_id`.


def new_job(
    policy: IdPolicy,
    type_name: str = TYPE_A,
    input: JsonValue = None,
    *,
    id: str | None = None,
    chain_type_name: str | None = None,
    schedule: Schedule | None = None,
    deduplication: Deduplication | None = None,
    chain_trace_context: str | None = None,
    trace_context: str | None = None,
    priority: int = 0,
    limit_key: str | None = None,
) -> NewJob:
    """The first job of a new chain (the chain's type is the job's type unless given), with a new id
    from ``policy`` unless ``id`` is given."""
    return NewJob(
        id=policy.generate() if id is None else id,
        type_name=type_name,
        chain_type_name=chain_type_name or type_name,
        input=input,
        schedule=schedule,
        deduplication=deduplication,
        chain_trace_context=chain_trace_context,
        trace_context=trace_context,
        priority=priority,
        limit_key=limit_key,
    )


def next_job(
    policy: IdPolicy,
    previous: StoredJob,
    type_name: str | None = None,
    input: JsonValue = None,
    *,
    id: str | None = None,
    schedule: Schedule | None = None,
    trace_context: str | None = None,
    priority: int = 0,
    limit_key: str | None = None,
) -> NewJob:
    """The continuation of ``previous`` (same chain, next ``chain_index``), with a new id from
    ``policy`` unless ``id`` is given."""
    return NewJob(
        id=policy.generate() if id is None else id,
        type_name=type_name or previous.type_name,
        chain_type_name=previous.chain_type_name,
        input=input,
        chain_id=previous.chain_id,
        chain_index=previous.chain_index + 1,
        schedule=schedule,
        chain_trace_context=previous.chain_trace_context,
        trace_context=trace_context,
        priority=priority,
        limit_key=limit_key,
    )


# -- assertions -------------------------------------------------------------------------------------


def assert_utc(value: datetime | None, what: str) -> None:
    assert value is not None, f"{what} is None"
    assert value.tzinfo is not None, f"{what} must be timezone-aware, got naive {value!r}"
    assert value.utcoffset() == timedelta(0), f"{what} must be in UTC, got {value!r}"


def assert_about(
    actual: datetime | None,
    expected: datetime,
    what: str,
    tolerance: timedelta = TOLERANCE,
) -> None:
    assert actual is not None, f"{what} is None, expected about {expected.isoformat()}"
    assert abs(actual - expected) <= tolerance, (
        f"{what} is {actual.isoformat()}, expected about {expected.isoformat()} (±{tolerance})"
    )


def assert_status(job: StoredJob | None, status: str, what: str = "job") -> StoredJob:
    assert job is not None, f"{what} is missing (expected status {status!r})"
    assert job.status == status, (
        f"{what} {job.id} has status {job.status!r}, expected {status!r} "
        f"(outcome={job.outcome!r}, leased_until={job.leased_until!r}, blocked={job.blocked!r}, "
        f"scheduled_at={job.scheduled_at!r})"
    )
    return job


def ids(items: Sequence[StoredJob] | Sequence[StoredChain]) -> list[str]:
    return [item.id for item in items]


async def within(awaitable: Awaitable[T], what: str, seconds: float = DEADLOCK_TIMEOUT) -> T:
    """Await ``awaitable`` or fail the case clearly if it hangs (a deadlock in the adapter)."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        raise AssertionError(
            f"{what} did not finish within {seconds:g}s (hung or deadlocked)"
        ) from None


@asynccontextmanager
async def background(coro: Coroutine[Any, Any, T]) -> AsyncIterator[asyncio.Task[T]]:
    """Run ``coro`` as a task owned by the block: cancelled and awaited if still running at exit."""
    task = asyncio.ensure_future(coro)
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        with suppress(BaseException):
            await task


async def settle() -> None:
    """Give concurrently started tasks a chance to run up to their blocking point (see SETTLE)."""
    await asyncio.sleep(SETTLE)


class Competitor(Generic[T]):
    """A concurrent actor for race cases: runs ``factory()`` in its own task once :meth:`go` is called.

    Use it as ``async with Competitor(lambda: ..., "what") as rival:`` around the transaction it races,
    so that the task outlives the transaction (a serialised backend runs it only after the commit) and
    is still cancelled and awaited if the case fails.
    """

    def __init__(self, factory: Callable[[], Awaitable[T]], what: str) -> None:
        self._factory = factory
        self._go = asyncio.Event()
        self.what = what
        self.task: asyncio.Task[T] | None = None

    async def _run(self) -> T:
        await self._go.wait()
        return await self._factory()

    async def __aenter__(self) -> Competitor[T]:
        self.task = asyncio.ensure_future(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        task = self.task
        if task is not None:
            if not task.done():
                task.cancel()
            with suppress(BaseException):
                await task

    def go(self) -> None:
        """Let the competitor start."""
        self._go.set()

    async def result(self, seconds: float = DEADLOCK_TIMEOUT) -> T:
        assert self.task is not None, "use the competitor as an async context manager"
        self.go()
        return await within(asyncio.shield(self.task), self.what, seconds)


class Boom(Exception):
    """Raised by cases to roll a transaction or savepoint back."""


# -- the adapter, driven the way the client and worker drive it ---------------------------------------


class Ops:
    """Short-hands over the adapter under test, each one a client or worker step."""

    def __init__(self, harness: StateHarness) -> None:
        self.harness = harness
        self.adapter: StateAdapter[Any] = harness.adapter

    # -- ids: every one from the adapter's policy

    @property
    def policy(self) -> IdPolicy:
        """The id policy of the adapter under test."""
        return self.adapter.ids

    def new_id(self) -> str:
        """A new id from the adapter's policy, for a job a case is about to create."""
        return self.adapter.ids.generate()

    def unknown_id(self) -> str:
        """An id that no job has: valid for the adapter's policy (a lookup of it must find nothing,
        not fail on its form) and never used, since the policy makes a new id each time."""
        return self.adapter.ids.generate()

    def new_job(
        self,
        type_name: str = TYPE_A,
        input: JsonValue = None,
        *,
        id: str | None = None,
        chain_type_name: str | None = None,
        schedule: Schedule | None = None,
        deduplication: Deduplication | None = None,
        chain_trace_context: str | None = None,
        trace_context: str | None = None,
        priority: int = 0,
        limit_key: str | None = None,
    ) -> NewJob:
        """:func:`new_job` with a new id from the adapter's policy unless ``id`` is given."""
        return new_job(
            self.adapter.ids,
            type_name,
            input,
            id=id,
            chain_type_name=chain_type_name,
            schedule=schedule,
            deduplication=deduplication,
            chain_trace_context=chain_trace_context,
            trace_context=trace_context,
            priority=priority,
            limit_key=limit_key,
        )

    def next_job(
        self,
        previous: StoredJob,
        type_name: str | None = None,
        input: JsonValue = None,
        *,
        id: str | None = None,
        schedule: Schedule | None = None,
        trace_context: str | None = None,
        priority: int = 0,
        limit_key: str | None = None,
    ) -> NewJob:
        """:func:`next_job` with a new id from the adapter's policy unless ``id`` is given."""
        return next_job(
            self.adapter.ids,
            previous,
            type_name,
            input,
            id=id,
            schedule=schedule,
            trace_context=trace_context,
            priority=priority,
            limit_key=limit_key,
        )

    # -- operations

    async def create(self, *jobs: NewJob, tx: Any = None) -> list[StoredJob]:
        created = await self.adapter.create_jobs(list(jobs), tx=tx)
        assert len(created) == len(jobs), (
            f"create_jobs returned {len(created)} results for {len(jobs)}"
        )
        return [c.job for c in created]

    async def start(self, type_name: str = TYPE_A, input: JsonValue = None, **kw: Any) -> StoredJob:
        tx = kw.pop("tx", None)
        (job,) = await self.create(self.new_job(type_name, input, **kw), tx=tx)
        return job

    async def start_blocked(
        self, type_name: str, blockers: Sequence[str], input: JsonValue = None, **kw: Any
    ) -> StoredJob:
        """Start a chain that waits for ``blockers`` (in one transaction, as the client does)."""
        async with self.adapter.transaction() as tx:
            job = await self.start(type_name, input, tx=tx, **kw)
            (added,) = await self.adapter.add_blockers([(job.id, list(blockers))], tx=tx)
        return added.job

    async def job(self, job_id: str, *, tx: Any = None) -> StoredJob:
        job = await self.adapter.get_job(job_id, tx=tx)
        assert job is not None, f"job {job_id} is missing"
        return job

    async def chain(self, chain_id: str, *, tx: Any = None) -> StoredChain:
        chain = await self.adapter.get_chain(chain_id, tx=tx)
        assert chain is not None, f"chain {chain_id} is missing"
        return chain

    async def close_job(
        self,
        job_id: str,
        outcome: Outcome = "completed",
        *,
        output: JsonValue = None,
        worker_id: str | None = None,
        error: str | None = None,
        tx: Any = None,
    ) -> CompleteResult:
        """Close a job (workerless unless ``worker_id``), locking it first as the client does."""
        if tx is None:
            async with self.adapter.transaction() as own:
                return await self.close_job(
                    job_id, outcome, output=output, worker_id=worker_id, error=error, tx=own
                )
        locked = await self.adapter.get_job(job_id, lock=True, tx=tx)
        assert locked is not None, f"job {job_id} to close is missing"
        return await self.adapter.complete_job(
            job_id, outcome=outcome, worker_id=worker_id, output=output, error=error, tx=tx
        )

    async def continue_with(
        self,
        job: StoredJob,
        type_name: str | None = None,
        input: JsonValue = None,
        *,
        worker_id: str | None = None,
        schedule: Schedule | None = None,
        blockers: Sequence[str] = (),
        tx: Any = None,
    ) -> tuple[StoredJob, CompleteResult]:
        """Continue ``job``'s chain with a new job (created, optionally blocked, then ``job`` closed)."""
        if tx is None:
            async with self.adapter.transaction() as own:
                return await self.continue_with(
                    job,
                    type_name,
                    input,
                    worker_id=worker_id,
                    schedule=schedule,
                    blockers=blockers,
                    tx=own,
                )
        locked = await self.adapter.get_job(job.id, lock=True, tx=tx)
        assert locked is not None, f"job {job.id} to continue is missing"
        (successor,) = await self.create(
            self.next_job(job, type_name, input, schedule=schedule), tx=tx
        )
        if blockers:
            (added,) = await self.adapter.add_blockers([(successor.id, list(blockers))], tx=tx)
            successor = added.job
        result = await self.adapter.complete_job(
            job.id,
            outcome="completed",
            worker_id=worker_id,
            succeeded_by_job_id=successor.id,
            tx=tx,
        )
        return successor, result

    async def claim(
        self,
        *type_names: str,
        limit: int = 100,
        worker_id: str = WORKER,
        lease: timedelta = LONG_LEASE,
        tx: Any = None,
    ) -> ClaimResult:
        return await self.adapter.claim_jobs(
            leases=dict.fromkeys(type_names or (TYPE_A,), lease),
            limit=limit,
            worker_id=worker_id,
            tx=tx,
        )

    async def claim_one(
        self, job_id: str, *, worker_id: str = WORKER, lease: timedelta = LONG_LEASE
    ) -> StoredJob:
        """Claim until ``job_id`` is among the claimed jobs (the only ready job of its type in a case)."""
        job = await self.job(job_id)
        result = await self.claim(job.type_name, limit=1, worker_id=worker_id, lease=lease)
        assert [j.id for j in result.jobs] == [job_id], (
            f"expected to claim {job_id}, claimed {[j.id for j in result.jobs]}"
        )
        return result.jobs[0]

    async def all_jobs(self, filter: JobFilter | None = None, *, tx: Any = None) -> list[StoredJob]:
        """Every job matching ``filter``, oldest first (follows cursors)."""
        out: list[StoredJob] = []
        cursor: str | None = None
        for _ in range(10_000):
            page = await self.adapter.list_jobs(
                filter or JobFilter(), order="asc", cursor=cursor, limit=100, tx=tx
            )
            out.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return out
        raise AssertionError("list_jobs never returned a last page")

    async def all_chains(
        self, filter: ChainFilter | None = None, *, tx: Any = None
    ) -> list[StoredChain]:
        out: list[StoredChain] = []
        cursor: str | None = None
        for _ in range(10_000):
            page = await self.adapter.list_chains(
                filter or ChainFilter(), order="asc", cursor=cursor, limit=100, tx=tx
            )
            out.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return out
        raise AssertionError("list_chains never returned a last page")

    @asynccontextmanager
    async def other_adapter(self) -> AsyncIterator[StateAdapter[Any]]:
        """A second adapter over the same store (another "process"), closed at exit. The case is
        not applicable when the harness offers no ``open_another``."""
        if self.harness.open_another is None:
            not_applicable("open_another")
        other = await self.harness.open_another()
        try:
            yield other
        finally:
            await other.close()


async def world(ops: Ops, *, tx: Any = None) -> dict[str, Any]:
    """Everything a reader can observe about the store (for before/after comparisons)."""
    adapter = ops.adapter
    jobs = await ops.all_jobs(tx=tx)
    chains = await ops.all_chains(tx=tx)
    blockers = {
        job.id: [(c.id, c.tail.id, c.status) for c in await adapter.get_job_blockers(job.id, tx=tx)]
        for job in jobs
    }
    blocked_by = {
        chain.id: sorted(ids((await adapter.list_blocked_jobs(chain.id, limit=1000, tx=tx)).items))
        for chain in chains
    }
    chain_jobs = {
        chain.id: ids((await adapter.list_chain_jobs(chain.id, limit=1000, tx=tx)).items)
        for chain in chains
    }
    return {
        "jobs": jobs,
        "chains": chains,
        "blockers": blockers,
        "blocked_by": blocked_by,
        "chain_jobs": chain_jobs,
    }


def diff_worlds(before: dict[str, Any], after: dict[str, Any]) -> str:
    """A readable difference of two :func:`world` snapshots ("" if equal)."""
    lines: list[str] = []
    before_jobs = {j.id: j for j in before["jobs"]}
    after_jobs = {j.id: j for j in after["jobs"]}
    for job_id in sorted(set(before_jobs) | set(after_jobs)):
        b, a = before_jobs.get(job_id), after_jobs.get(job_id)
        if b is None:
            lines.append(f"job {job_id} appeared: {a}")
        elif a is None:
            lines.append(f"job {job_id} disappeared: {b}")
        elif a != b:
            changed = [
                f"{name}: {getattr(b, name)!r} -> {getattr(a, name)!r}"
                for name in b.__dataclass_fields__
                if getattr(a, name) != getattr(b, name)
            ]
            lines.append(f"job {job_id} changed: " + "; ".join(changed))
    for key in ("chains", "blockers", "blocked_by", "chain_jobs"):
        if before[key] != after[key]:
            lines.append(f"{key} differ:\n  before={before[key]!r}\n  after ={after[key]!r}")
    return "\n".join(lines)
