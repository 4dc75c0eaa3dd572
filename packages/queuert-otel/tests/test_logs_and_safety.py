"""Log records through the Logs API, correlated with the spans; and an OpenTelemetry SDK that fails
never reaches queuert."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from otel_helpers import Telemetry
from queuert import (
    Attempt,
    ChainFailedError,
    Client,
    EntryJobType,
    InMemoryStateAdapter,
    Worker,
)
from queuert.state import StateAdapter
from queuert_otel import OtelObservability


@dataclass
class N:
    value: int


class Echo(EntryJobType[N, N]):
    pass


class Bad(EntryJobType[N, N], max_attempts=1):
    pass


def worker_for(client: Client[Any]) -> Worker[Any]:
    worker: Worker[Any] = Worker(client)

    @worker.handler(Echo)
    async def echo(attempt: Attempt[Echo]) -> N:
        return attempt.input

    return worker


async def test_events_become_correlated_log_records(
    state: StateAdapter[Any], telemetry: Telemetry
) -> None:
    client = Client(state, job_types=[Echo], observability=telemetry.observability)
    async with client:
        async with client.transaction() as tx:
            chain = await client.start_chain(Echo(N(1)), tx=tx)
        async with worker_for(client):
            await client.wait_for_chain(chain, Echo, timeout=20)
        await client.wait_published()
    records = [r.log_record for r in telemetry.logs.get_finished_logs()]
    bodies = [r.body for r in records]
    for name in (
        "chain_created",
        "job_created",
        "worker_started",
        "job_attempt_started",
        "job_completed",
        "chain_closed",
        "job_attempt_completed",
    ):
        assert name in bodies, bodies
    attempt = telemetry.one("process echo")
    for record in records:
        attributes = dict(record.attributes or {})
        if record.body in ("job_attempt_started", "job_attempt_completed"):
            assert record.trace_id == attempt.context.trace_id
            assert record.span_id == attempt.context.span_id
            assert attributes["queuert.job.id"] == chain.id
            assert record.severity_text == "INFO"
        if record.body == "chain_created":
            assert record.trace_id == telemetry.one("create chain echo").context.trace_id
    assert "job_leases_renewed" not in bodies, "DEBUG events stay out at the default level"


async def test_by_default_only_what_needs_attention_is_logged() -> None:
    telemetry = Telemetry()
    otel = OtelObservability(logger_provider=telemetry.logger_provider)
    client = Client(InMemoryStateAdapter(), job_types=[Bad], observability=otel)
    worker: Worker[Any] = Worker(client)

    @worker.handler(Bad)
    async def bad(attempt: Attempt[Bad]) -> N:
        raise KeyError("no")

    async with client:
        async with client.transaction() as tx:
            chain = await client.start_chain(Bad(N(1)), tx=tx)
        async with worker:
            with pytest.raises(ChainFailedError):
                await client.wait_for_chain(chain, timeout=20)
    assert telemetry.log_bodies() == ["job_attempt_failed"]
    telemetry.shutdown()


class BrokenTracer(Tracer):
    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer down")

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer down")


class BrokenProvider(TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        return BrokenTracer()


async def test_a_failing_sdk_never_reaches_queuert(caplog: pytest.LogCaptureFixture) -> None:
    otel = OtelObservability(tracer_provider=BrokenProvider())
    async with InMemoryStateAdapter() as state:
        client = Client(state, job_types=[Echo], observability=otel)
        async with client:
            async with client.transaction() as tx:
                chain = await client.start_chain(Echo(N(7)), tx=tx)
            async with worker_for(client):
                assert await client.wait_for_chain(chain, Echo, timeout=20) == N(7)
        stored = await state.get_job(chain.id)
        assert stored is not None and stored.trace_context is None
    failures = [r for r in caplog.records if r.name == "queuert.otel"]
    assert failures and all(r.levelno == logging.ERROR for r in failures)


async def test_without_providers_it_does_nothing() -> None:
    otel = OtelObservability()
    async with InMemoryStateAdapter() as state:
        client = Client(state, job_types=[Echo], observability=otel)
        async with client:
            async with client.transaction() as tx:
                chain = await client.start_chain(Echo(N(1)), tx=tx)
            async with otel.watch(client) as health:
                assert health is None
            async with worker_for(client):
                await client.wait_for_chain(chain, Echo, timeout=20)
        stored = await state.get_job(chain.id)
        assert stored is not None and stored.chain_trace_context is None
