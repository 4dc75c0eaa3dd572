"""Traces follow a chain: creation spans parented on the caller's span, attempt spans on their job's
creation span (retries are siblings), continuations linked to their origin, one await/resolve pair per
blocker, workerless completion and deduplication visible, failures recorded. On every backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from otel_helpers import Telemetry, parent_of, tree
from queuert import (
    Attempt,
    Backoff,
    Blockers,
    Chain,
    ChainResult,
    Client,
    Continues,
    Deduplication,
    EntryJobType,
    JobType,
    TxContext,
    Worker,
)
from queuert.state import StateAdapter
from typing_extensions import Never


@dataclass
class N:
    value: int


class Fetch(EntryJobType[N, N]):
    pass


class Sum(JobType[N, N], Blockers[tuple[Chain[Fetch], ...]]):
    pass


class Plan(EntryJobType[N, Never], Continues[Sum], ChainResult[N]):
    pass


class Flaky(EntryJobType[N, N]):
    pass


class Approve(EntryJobType[N, N]):
    pass


def worker_for(client: Client[Any], mode: str = "atomic") -> Worker[Any]:
    worker: Worker[Any] = Worker(
        client, concurrency=4, backoff=Backoff(initial=0.01, maximum=0.01, jitter=0.0)
    )

    @worker.handler(Fetch)
    async def fetch(attempt: Attempt[Fetch]) -> N:
        await attempt.prepare(mode)  # type: ignore[arg-type]
        return N(attempt.input.value * 10)

    @worker.handler(Plan)
    async def plan(attempt: Attempt[Plan]) -> None:
        await attempt.prepare(mode)  # type: ignore[arg-type]

        async def fan_out(ctx: TxContext[Any]) -> Sum:
            chains = await ctx.start_chains([Fetch(N(i)) for i in range(attempt.input.value)])
            return Sum(attempt.input, blockers=tuple(chains))

        await attempt.complete(fan_out)

    @worker.handler(Sum)
    async def total(attempt: Attempt[Sum]) -> N:
        await attempt.prepare(mode)  # type: ignore[arg-type]
        return N(sum(b.output.value for b in attempt.blockers))

    @worker.handler(Flaky)
    async def flaky(attempt: Attempt[Flaky]) -> N:
        await attempt.prepare(mode)  # type: ignore[arg-type]
        if attempt.number < 3:
            raise ValueError(f"try {attempt.number}")
        return attempt.input

    return worker


@pytest.mark.parametrize("mode", ["atomic", "staged"])
async def test_a_chain_with_blockers_and_a_continuation(
    state: StateAdapter[Any], telemetry: Telemetry, mode: str
) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")
    async with Client(
        state, job_types=[Fetch, Sum, Plan], observability=telemetry.observability
    ) as client:
        with tracer.start_as_current_span("POST /valuations") as request:
            async with client.transaction() as tx:
                chain = await client.start_chain(Plan(N(2)), tx=tx)
        async with worker_for(client, mode):
            result = await client.wait_for_chain(chain, timeout=20)
        assert result == N(10)
        await client.wait_published()
    spans = telemetry.finished()
    shown = tree(spans)
    request_span = telemetry.one("POST /valuations")
    create_chain = next(
        s
        for s in telemetry.named("create chain plan")
        if s.parent is not None and s.parent.span_id == request.get_span_context().span_id
    )
    assert create_chain.kind is SpanKind.PRODUCER, shown
    assert create_chain.context.trace_id == request_span.context.trace_id
    assert create_chain.attributes["queuert.chain.id"] == chain.id
    create_plan = telemetry.one("create plan")
    assert parent_of(create_plan, spans) is create_chain, shown
    assert create_plan.attributes["messaging.message.id"] == chain.id
    assert create_plan.attributes["messaging.system"] == "queuert"
    assert create_plan.attributes["messaging.destination.name"] == "plan"
    process_plan = telemetry.one("process plan")
    assert process_plan.kind is SpanKind.CONSUMER
    assert parent_of(process_plan, spans) is create_plan, shown
    # the continuation: a job of the same chain, linked to the job it continues
    create_sum = telemetry.one("create sum")
    assert parent_of(create_sum, spans) is create_chain, shown
    assert [link.context.span_id for link in create_sum.links] == [create_plan.context.span_id], (
        shown
    )
    assert parent_of(telemetry.one("process sum"), spans) is create_sum
    # the blocker chains: started by the handler, inside the attempt's span
    fetch_chains = telemetry.named("create chain fetch")
    assert len(fetch_chains) == 2
    assert all(parent_of(c, spans) is process_plan for c in fetch_chains), shown
    # one await/resolve pair per blocker link, in the blocked job's trace
    awaits = [s for s in spans if s.name.startswith("await ")]
    resolves = telemetry.named("resolve blocker")
    assert len(awaits) == 2 and len(resolves) == 2, shown
    for span in awaits:
        assert parent_of(span, spans) is create_sum, shown
        assert span.kind is SpanKind.PRODUCER
        assert [link.context.span_id for link in span.links] == [
            c.context.span_id
            for c in fetch_chains
            if c.attributes["queuert.chain.id"] == span.attributes["queuert.blocker.chain.id"]
        ], shown
    assert {parent_of(r, spans) for r in resolves} == set(awaits), shown
    # the chain closes once, in the attempt that closed it: an attribute of its span
    process_sum = telemetry.one("process sum")
    assert process_sum.attributes["queuert.chain.outcome"] == "completed"
    assert telemetry.named("close chain plan") == []
    assert "queuert.chain.outcome" not in (process_plan.attributes or {}), (
        "a continuation does not close it"
    )
    assert telemetry.errors() == [], shown


async def test_retries_are_sibling_attempts_with_their_errors(
    state: StateAdapter[Any], telemetry: Telemetry
) -> None:
    async with Client(state, job_types=[Flaky], observability=telemetry.observability) as client:
        async with client.transaction() as tx:
            chain = await client.start_chain(Flaky(N(1)), tx=tx)
        async with worker_for(client):
            await client.wait_for_chain(chain, timeout=20)
    spans = telemetry.finished()
    job = telemetry.one("create flaky")
    attempts = sorted(telemetry.named("process flaky"), key=lambda s: s.start_time or 0)
    assert [s.attributes["queuert.job.attempt"] for s in attempts] == [1, 2, 3]
    assert all(parent_of(s, spans) is job for s in attempts), tree(spans)
    failed, again, done = attempts
    for span in (failed, again):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "ValueError"
        assert span.attributes["queuert.job.retried"] is True
        assert "queuert.job.retry_at" in span.attributes
        (exception,) = [e for e in span.events if e.name == "exception"]
        assert exception.attributes["exception.type"] == "ValueError"
    assert done.status.status_code is not StatusCode.ERROR


async def test_workerless_completion_and_deduplication_are_visible(
    state: StateAdapter[Any], telemetry: Telemetry
) -> None:
    async with Client(state, job_types=[Approve], observability=telemetry.observability) as client:
        async with client.transaction() as tx:
            chain = await client.start_chain(Approve(N(1), deduplication=Deduplication("k")), tx=tx)
        async with client.transaction() as tx:
            again = await client.start_chain(Approve(N(2), deduplication=Deduplication("k")), tx=tx)
        assert again.deduplicated
        async with client.transaction() as tx:
            await client.complete_chain(chain, Approve, N(3), tx=tx)
    spans = telemetry.finished()
    shown = tree(spans)
    first, dedup = sorted(telemetry.named("create chain approve"), key=lambda s: s.start_time or 0)
    assert "queuert.chain.deduplicated" not in first.attributes
    assert dedup.attributes["queuert.chain.deduplicated"] is True
    assert dedup.attributes["queuert.chain.id"] == chain.id
    assert [link.context.span_id for link in dedup.links] == [first.context.span_id], shown
    complete = telemetry.one("complete approve")
    assert complete.attributes["queuert.job.workerless"] is True
    assert parent_of(complete, spans) is next(
        s
        for s in telemetry.named("create approve")
        if "queuert.chain.deduplicated" not in s.attributes
    ), shown
    assert telemetry.one("close chain approve").attributes["queuert.chain.outcome"] == "completed"
    assert telemetry.errors() == []


async def test_a_stored_context_of_another_tracer_is_ignored(
    state: StateAdapter[Any], telemetry: Telemetry
) -> None:
    from queuert.state import NewJob

    created = await state.create_jobs(
        [
            NewJob(
                id=state.ids.generate(),
                type_name="fetch",
                chain_type_name="fetch",
                input={"value": 1},
                chain_trace_context="not a traceparent",
                trace_context="{}",
            )
        ]
    )
    client = Client(state, job_types=[Fetch], observability=telemetry.observability)
    async with client, worker_for(client):
        await client.wait_for_chain(created[0].job.chain_id, Fetch, timeout=20)
    process = telemetry.one("process fetch")
    assert process.parent is None, "a new trace, not a failure"
    assert telemetry.errors() == []
