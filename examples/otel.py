"""OpenTelemetry: a chain with blockers and a continuation, its trace tree, metrics and queue health.

    uv run python -m examples.otel

An HTTP request (a span of the application) starts ``PlanValuation``. Its handler fans out one
``FetchPrice`` chain per ticker and continues to ``SumPrices``, which waits for them (blockers). One
price lookup fails once and is retried. ``queuert-otel`` turns all of it into spans, metrics and log
records; this example keeps them in the SDK's in-memory exporters and prints them. In production you
would use the OTLP exporters instead (see the package README) and the same ``OtelObservability``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs import export as log_export
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from queuert import (
    Attempt,
    Backoff,
    Blockers,
    Chain,
    ChainResult,
    Client,
    Continues,
    EntryJobType,
    InMemoryStateAdapter,
    JobType,
    TxContext,
    Worker,
)
from queuert_otel import OtelObservability
from typing_extensions import Never


@dataclass
class Portfolio:
    owner: str
    tickers: list[str]


@dataclass
class Symbol:
    ticker: str


@dataclass
class Price:
    cents: int


@dataclass
class Valuation:
    owner: str
    total_cents: int


PRICES = {"ACME": 1250, "INIT": 830}


class FetchPrice(EntryJobType[Symbol, Price]):
    pass


class SumPrices(JobType[Portfolio, Valuation], Blockers[tuple[Chain[FetchPrice], ...]]):
    pass


class PlanValuation(EntryJobType[Portfolio, Never], Continues[SumPrices], ChainResult[Valuation]):
    pass


def build_worker(client: Client[Any]) -> Worker[Any]:
    worker: Worker[Any] = Worker(client, concurrency=4, backoff=Backoff(initial=0.05, jitter=0.0))

    @worker.handler(FetchPrice)
    async def fetch(attempt: Attempt[FetchPrice]) -> Price:
        if attempt.input.ticker == "INIT" and attempt.number == 1:
            raise TimeoutError("price feed timed out")
        return Price(PRICES[attempt.input.ticker])

    @worker.handler(PlanValuation)
    async def plan(attempt: Attempt[PlanValuation]) -> None:
        portfolio = attempt.input

        async def fan_out(ctx: TxContext[Any]) -> SumPrices:
            prices = await ctx.start_chains([FetchPrice(Symbol(t)) for t in portfolio.tickers])
            return SumPrices(portfolio, blockers=tuple(prices))

        await attempt.complete(fan_out)

    @worker.handler(SumPrices)
    async def total(attempt: Attempt[SumPrices]) -> Valuation:
        cents = sum(chain.output.cents for chain in attempt.blockers)
        return Valuation(attempt.input.owner, cents)

    return worker


def trace_tree(spans: list[ReadableSpan]) -> list[str]:
    """Each trace as an indented tree: name, kind, status and links."""
    known = {s.context.span_id for s in spans if s.context is not None}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent and span.parent.span_id in known else None
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            status = " ERROR" if span.status.status_code is StatusCode.ERROR else ""
            links = f" ->{len(span.links)} link(s)" if span.links else ""
            lines.append(f"{'    ' * depth}{span.name} [{span.kind.name}{status}]{links}")
            if span.context is not None:
                walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return lines


def metric_lines(reader: InMemoryMetricReader) -> dict[str, float]:
    """Every data point as ``name{attributes}`` -> value (histograms: their count)."""
    out: dict[str, float] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attrs = ",".join(
                        f"{k}={v!s}" for k, v in sorted((point.attributes or {}).items())
                    )
                    value = getattr(point, "value", None)
                    out[f"{metric.name}{{{attrs}}}"] = (
                        value if value is not None else getattr(point, "count", 0)
                    )
    return out


async def main() -> dict[str, Any]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    logs = (
        getattr(log_export, "InMemoryLogRecordExporter", None) or log_export.InMemoryLogExporter
    )()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(log_export.SimpleLogRecordProcessor(logs))
    otel = OtelObservability(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        logger_provider=logger_provider,
    )
    app = tracer_provider.get_tracer("shop")

    async with InMemoryStateAdapter() as state, Client(state, observability=otel) as client:
        worker = build_worker(client)
        async with otel.watch(client, min_interval=0) as health:
            assert health is not None
            with app.start_as_current_span("POST /valuations"):
                async with client.transaction() as tx:
                    chain = await client.start_chain(
                        PlanValuation(Portfolio("ann", ["ACME", "INIT"])), tx=tx
                    )
            await health.refresh()
            backlog = {k: v for k, v in metric_lines(reader).items() if "queue.ready" in k}
            async with worker:
                valuation = await client.wait_for_chain(chain, timeout=10)
            await client.wait_published()

    tree = trace_tree(list(spans.get_finished_spans()))
    print(f"valuation: {valuation}\n")
    print("trace trees:")
    for line in tree:
        print(f"  {line}")
    metrics = metric_lines(reader)
    print("\nqueue health before the worker started:")
    for name, value in backlog.items():
        print(f"  {name} = {value}")
    print("\nsome metrics:")
    for name, value in sorted(metrics.items()):
        if name.startswith(("messaging.", "queuert.chain.closed", "queuert.job.attempt.failed")):
            print(f"  {name} = {value}")
    records = [r.log_record for r in logs.get_finished_logs()]
    print(f"\n{len(records)} log records, e.g.:")
    for record in records:
        if record.body == "job_attempt_failed":
            attrs = record.attributes or {}
            print(
                f"  {record.severity_text} {record.body} {attrs.get('queuert.error_type')} "
                f"trace={record.trace_id:032x} span={record.span_id:016x}"
            )
    tracer_provider.shutdown()
    meter_provider.shutdown()
    logger_provider.shutdown()
    return {"valuation": valuation, "tree": tree, "metrics": metrics, "backlog": backlog}


if __name__ == "__main__":
    asyncio.run(main())
