"""Nothing is exported for work that rolled back: no metric increment, no log record, and no finished
span other than those marked as errors. Chain starts, workerless completion and a worker's completion
in both processing modes, on every backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.trace import StatusCode
from otel_helpers import Telemetry, tree
from queuert import (
    Attempt,
    Backoff,
    ChainResult,
    Client,
    Continues,
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


class Side(EntryJobType[N, N]):
    pass


class Next(JobType[N, N]):
    pass


class Work(EntryJobType[N, N]):
    pass


class Hold(EntryJobType[N, Never], Continues[Next], ChainResult[N]):
    pass


class Boom(Exception):
    pass


def assert_only_errors(telemetry: Telemetry, names: set[str]) -> None:
    """Spans named in ``names`` were exported only as errors."""
    shown = tree(telemetry.finished())
    for span in telemetry.finished():
        if span.name in names:
            assert span.status.status_code is StatusCode.ERROR, shown


async def test_a_rolled_back_start_exports_only_error_spans(
    state: StateAdapter[Any], telemetry: Telemetry
) -> None:
    async with Client(state, job_types=[Side], observability=telemetry.observability) as client:
        with pytest.raises(Boom):
            async with client.transaction() as tx:
                await client.start_chain(Side(N(1)), tx=tx)
                raise Boom
        await client.wait_published()
    names = telemetry.names()
    assert sorted(names) == ["create chain side", "create side"], names
    assert all(s.status.description == "rolled back" for s in telemetry.errors())
    assert telemetry.not_errors() == []
    points = telemetry.points()
    assert telemetry.total("queuert.job.created", points) == 0
    assert telemetry.total("queuert.chain.created", points) == 0
    assert telemetry.total("messaging.client.sent.messages", points) == 0
    assert telemetry.log_bodies() == []


async def test_a_rolled_back_savepoint_exports_only_its_error_spans(
    state: StateAdapter[Any], telemetry: Telemetry
) -> None:
    assert state.capabilities.savepoints
    client = Client(state, job_types=[Side], observability=telemetry.observability)
    async with client, client.transaction() as tx:
        kept = await client.start_chain(Side(N(1)), tx=tx)
        with pytest.raises(Boom):
            async with client.savepoint(tx):
                await client.start_chain(Side(N(2)), tx=tx)
                raise Boom
    errors = telemetry.errors()
    assert sorted(s.name for s in errors) == ["create chain side", "create side"]
    ok = telemetry.not_errors()
    assert sorted(s.name for s in ok) == ["create chain side", "create side"]
    assert {s.attributes.get("queuert.chain.id") for s in ok} == {kept.id}
    assert telemetry.total("queuert.chain.created") == 1
    assert telemetry.log_bodies() == ["chain_created", "job_created"]


async def test_a_rolled_back_workerless_completion_exports_nothing_of_it(
    state: StateAdapter[Any], telemetry: Telemetry
) -> None:
    async with Client(
        state, job_types=[Hold, Next], observability=telemetry.observability
    ) as client:
        async with client.transaction() as tx:
            chain = await client.start_chain(Hold(N(1)), tx=tx)
        telemetry.spans.clear()
        telemetry.logs.clear()
        before = telemetry.points()
        with pytest.raises(Boom):
            async with client.transaction() as tx:
                await client.complete_chain(chain, Hold, Next(N(2)), tx=tx)
                raise Boom
        await client.wait_published()
    assert sorted(telemetry.names()) == ["create next"], tree(telemetry.finished())
    assert_only_errors(telemetry, {"create next"})
    after = telemetry.points()
    for name in ("queuert.job.completed", "queuert.job.created", "messaging.client.sent.messages"):
        assert telemetry.total(name, after) == telemetry.total(name, before), name
    assert telemetry.log_bodies() == []


@pytest.mark.parametrize("mode", ["atomic", "staged"])
async def test_a_rolled_back_worker_completion_exports_only_the_failed_attempt(
    state: StateAdapter[Any], telemetry: Telemetry, mode: str
) -> None:
    client = Client(state, job_types=[Work, Side], observability=telemetry.observability)
    worker: Worker[Any] = Worker(client, backoff=Backoff(initial=0.01, maximum=0.01, jitter=0.0))

    @worker.handler(Work)
    async def work(attempt: Attempt[Work]) -> None:
        await attempt.prepare(mode)  # type: ignore[arg-type]

        async def write(ctx: TxContext[Any]) -> N:
            if attempt.number == 1:
                await ctx.start_chain(Side(N(0)))
                raise Boom("the completion rolls back with the chain it started")
            return attempt.input

        await attempt.complete(write)

    async with client:
        async with client.transaction() as tx:
            chain = await client.start_chain(Work(N(5)), tx=tx)
        async with worker:
            assert await client.wait_for_chain(chain, Work, timeout=20) == N(5)
        await client.wait_published()
    spans = telemetry.finished()
    shown = tree(spans)
    assert_only_errors(telemetry, {"create chain side", "create side"})
    attempts = sorted(telemetry.named("process work"), key=lambda s: s.start_time or 0)
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.UNSET], shown
    points = telemetry.points()
    assert telemetry.total("queuert.chain.created", points, queuert__chain__type="side") == 0
    assert telemetry.total("queuert.job.created", points, queuert__job__type="side") == 0
    assert telemetry.total("queuert.job.completed", points) == 1
    assert telemetry.total("queuert.job.attempt.failed", points, error__type="Boom") == 1
    records = telemetry.logs.get_finished_logs()
    assert not [
        r for r in records if (r.log_record.attributes or {}).get("queuert.type_name") == "side"
    ]
    assert not [
        r for r in records if (r.log_record.attributes or {}).get("queuert.job.type_name") == "side"
    ]
