"""Trace contexts: asked of a tracing observability adapter at creation, stored, handed back in events,
and abandoned when the work that got them rolls back."""

from __future__ import annotations

import contextlib
import contextvars
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from queuert import (
    Attempt,
    Blockers,
    Chain,
    ChainResult,
    Client,
    Continues,
    Deduplication,
    DuplicateJobIdError,
    EntryJobType,
    InMemoryStateAdapter,
    JobType,
    Worker,
)
from queuert.observability import (
    ChainClosed,
    ChainCreated,
    ChainDeduplicated,
    Event,
    JobCompleted,
    JobCreated,
    JobInfo,
)
from queuert.tracing import AttemptScopes, TraceContexts
from typing_extensions import Never


class Leaf(EntryJobType[int, int]):
    pass


class Last(JobType[int, int]):
    pass


class First(EntryJobType[int, Never], Continues[Last], ChainResult[int]):
    pass


class Gather(EntryJobType[int, int], Blockers[tuple[Chain[Leaf], ...]]):
    pass


@dataclass
class Tracing:
    """Hands out ``kind:n`` contexts and records what it is told."""

    events: list[Event] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    asked: list[tuple[Any, ...]] = field(default_factory=list)
    fail: bool = False
    _n: itertools.count[int] = field(default_factory=itertools.count)

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def start_chain(self, chain_type_name: str) -> str | None:
        self.asked.append(("chain", chain_type_name))
        return f"chain:{next(self._n)}"

    def start_job(
        self,
        type_name: str,
        chain_type_name: str,
        chain_trace_context: str | None,
        origin_trace_context: str | None,
    ) -> str | None:
        if self.fail:
            raise RuntimeError("tracing is down")
        self.asked.append(("job", type_name, chain_trace_context, origin_trace_context))
        return f"job:{next(self._n)}"

    def start_blockers(
        self, trace_context: str | None, blocker_chain_ids: Sequence[str]
    ) -> list[str | None]:
        return [f"link:{next(self._n)}" for _ in blocker_chain_ids]

    def abandon(self, trace_contexts: Sequence[str]) -> None:
        self.abandoned.extend(trace_contexts)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class Boom(Exception):
    pass


@pytest.fixture
def tracing() -> Tracing:
    assert isinstance(Tracing(), TraceContexts)
    return Tracing()


@pytest.fixture
def client(tracing: Tracing) -> Client[Any]:
    return Client(
        InMemoryStateAdapter(), job_types=[Leaf, Last, First, Gather], observability=tracing
    )


async def test_a_chain_start_stores_the_contexts_and_its_events_carry_them(
    client: Client[Any], tracing: Tracing
) -> None:
    async with client.transaction() as tx:
        chain = await client.start_chain(Leaf(1), tx=tx)
    stored = await client.state.get_job(chain.id)
    assert stored is not None
    assert (stored.chain_trace_context, stored.trace_context) == ("chain:0", "job:1")
    assert tracing.asked == [("chain", "leaf"), ("job", "leaf", "chain:0", None)]
    (created,) = tracing.of(ChainCreated)
    assert created.trace_context == "chain:0"
    (job,) = tracing.of(JobCreated)
    assert (job.job.chain_trace_context, job.job.trace_context) == ("chain:0", "job:1")
    assert job.origin_trace_context is None and job.blockers == ()
    assert tracing.abandoned == []


async def test_a_continuation_keeps_the_chain_context_and_names_its_origin(
    client: Client[Any], tracing: Tracing
) -> None:
    async with client.transaction() as tx:
        chain = await client.start_chain(First(1), tx=tx)
    async with client.transaction() as tx:
        await client.complete_chain(chain, First, Last(2), tx=tx)
    created = tracing.of(JobCreated)
    assert [c.job.type_name for c in created] == ["first", "last"]
    successor = created[1]
    assert successor.job.chain_trace_context == "chain:0"
    assert successor.job.trace_context == "job:2"
    assert successor.origin_trace_context == "job:1"
    (completed,) = tracing.of(JobCompleted)
    assert completed.worker_id is None
    assert (completed.job.chain_trace_context, completed.job.trace_context) == (
        "chain:0",
        "job:1",
    )


async def test_blocker_links_get_contexts_resolved_when_the_blocker_closes(
    client: Client[Any], tracing: Tracing
) -> None:
    async with client.transaction() as tx:
        leaf = await client.start_chain(Leaf(1), tx=tx)
        done = await client.start_chain(Leaf(2), tx=tx)
    async with client.transaction() as tx:
        await client.complete_chain(done, Leaf, 2, tx=tx)
    async with client.transaction() as tx:
        await client.start_chain(Gather(0, blockers=(leaf, done)), tx=tx)
    gather = tracing.of(JobCreated)[-1]
    assert [(b.chain_id, b.open) for b in gather.blockers] == [(leaf.id, True), (done.id, False)]
    links = [b.trace_context for b in gather.blockers]
    leaf_created, done_created = tracing.of(ChainCreated)[:2]
    assert [b.chain_trace_context for b in gather.blockers] == [
        leaf_created.trace_context,
        done_created.trace_context,
    ]
    assert all(link is not None and link.startswith("link:") for link in links)
    async with client.transaction() as tx:
        await client.complete_chain(leaf, Leaf, 1, tx=tx)
    closed = [c for c in tracing.of(ChainClosed) if c.chain_id == leaf.id]
    assert [c.blocker_trace_contexts for c in closed] == [(links[0],)]
    assert closed[0].trace_context == tracing.of(ChainCreated)[0].trace_context


async def test_rolled_back_creation_abandons_its_contexts(
    client: Client[Any], tracing: Tracing
) -> None:
    async with client.transaction() as tx:
        leaf = await client.start_chain(Leaf(1), tx=tx)
    tracing.events.clear()
    with pytest.raises(Boom):
        async with client.transaction() as tx:
            await client.start_chain(Gather(0, blockers=(leaf,)), tx=tx)
            raise Boom
    assert tracing.events == []
    assert sorted(tracing.abandoned) == ["chain:2", "job:3", "link:4"]


async def test_a_rolled_back_savepoint_abandons_only_its_share(
    client: Client[Any], tracing: Tracing
) -> None:
    async with client.transaction() as tx:
        await client.start_chain(Leaf(1), tx=tx)
        with pytest.raises(Boom):
            async with client.savepoint(tx):
                await client.start_chain(Leaf(2), tx=tx)
                raise Boom
    assert sorted(tracing.abandoned) == ["chain:2", "job:3"]
    assert [e.trace_context for e in tracing.of(ChainCreated)] == ["chain:0"]


async def test_deduplication_reports_both_contexts(client: Client[Any], tracing: Tracing) -> None:
    async with client.transaction() as tx:
        first = await client.start_chain(Leaf(1, deduplication=Deduplication("k")), tx=tx)
    async with client.transaction() as tx:
        again = await client.start_chain(Leaf(2, deduplication=Deduplication("k")), tx=tx)
    assert again.deduplicated and again.id == first.id
    (dedup,) = tracing.of(ChainDeduplicated)
    assert (dedup.trace_context, dedup.job_trace_context) == ("chain:2", "job:3")
    assert dedup.existing_trace_context == "chain:0"


async def test_an_adapter_that_raises_stores_no_context(
    client: Client[Any], tracing: Tracing
) -> None:
    tracing.fail = True
    async with client.transaction() as tx:
        chain = await client.start_chain(Leaf(1), tx=tx)
    stored = await client.state.get_job(chain.id)
    assert stored is not None
    assert (stored.chain_trace_context, stored.trace_context) == ("chain:0", None)


async def test_without_a_tracing_adapter_nothing_is_stored() -> None:
    client: Client[Any] = Client(InMemoryStateAdapter(), job_types=[Leaf])
    async with client.transaction() as tx:
        chain = await client.start_chain(Leaf(1), tx=tx)
    stored = await client.state.get_job(chain.id)
    assert stored is not None
    assert (stored.chain_trace_context, stored.trace_context) == (None, None)


CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("current", default=None)


@dataclass
class Scoped(Tracing):
    """Also gives each attempt a scope that sets a context variable while the handler runs."""

    entered: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def _scope(self, job: JobInfo) -> Iterator[None]:
        token = CURRENT.set(f"{job.id}#{job.attempt}")
        self.entered.append(job.id)
        try:
            yield
        finally:
            CURRENT.reset(token)

    def attempt_scope(self, job: JobInfo) -> contextlib.AbstractContextManager[None]:
        return self._scope(job)


async def test_the_handler_runs_in_the_attempt_scope() -> None:
    scoped = Scoped()
    assert isinstance(scoped, AttemptScopes)
    client: Client[Any] = Client(InMemoryStateAdapter(), job_types=[Leaf], observability=scoped)
    seen: list[str | None] = []
    worker: Worker[Any] = Worker(client)

    @worker.handler(Leaf)
    async def leaf(attempt: Attempt[Leaf]) -> int:
        seen.append(CURRENT.get())
        return attempt.input

    async with client:
        async with client.transaction() as tx:
            chain = await client.start_chain(Leaf(1), tx=tx)
        async with worker:
            await client.wait_for_chain(chain, Leaf, timeout=10)
    assert seen == [f"{chain.id}#1"]
    assert scoped.entered == [chain.id]
    assert CURRENT.get() is None, "the scope stays inside the handler's task"


async def test_a_failed_write_abandons_its_contexts(client: Client[Any], tracing: Tracing) -> None:
    async with client.transaction() as tx:
        first = await client.start_chain(Leaf(1), tx=tx)
    tracing.events.clear()
    with pytest.raises(DuplicateJobIdError):
        async with client.transaction() as tx:
            await client.start_chain(Leaf(2, id=first.id), tx=tx)
    assert tracing.events == []
    assert sorted(tracing.abandoned) == ["chain:2", "job:3"]
