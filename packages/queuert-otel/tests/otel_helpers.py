"""The SDK side of the tests: providers with in-memory exporters and readers, and views of what
they hold (span trees, metric points, log records)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs import export as log_export
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from queuert_otel import OtelObservability


class Telemetry:
    """An ``OtelObservability`` whose spans, metrics and logs stay in memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        exporter = (
            getattr(log_export, "InMemoryLogRecordExporter", None) or log_export.InMemoryLogExporter
        )
        self.logs = exporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))
        self.observability = OtelObservability(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            logger_provider=self.logger_provider,
            log_level=logging.INFO,
        )

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        self.logger_provider.shutdown()

    # -- spans

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"{len(found)} spans named {name!r}: {self.names()}"
        return found[0]

    def names(self) -> list[str]:
        return [s.name for s in self.finished()]

    def errors(self) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.status.status_code is StatusCode.ERROR]

    def not_errors(self) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.status.status_code is not StatusCode.ERROR]

    # -- metrics

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Every data point by instrument name: (attributes, value) (sum, gauge value, or histogram
        count)."""
        out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return out
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:
                            value = point.count  # type: ignore[union-attr]
                        out.setdefault(metric.name, []).append(
                            (dict(point.attributes or {}), value)
                        )
        return out

    def total(
        self,
        name: str,
        points: dict[str, list[tuple[dict[str, Any], Any]]] | None = None,
        **where: Any,
    ) -> Any:
        """The sum of instrument ``name``'s points whose attributes include ``where`` (dots as
        ``__``)."""
        points = self.points() if points is None else points
        want = {k.replace("__", "."): v for k, v in where.items()}
        return sum(
            v
            for attrs, v in points.get(name, [])
            if all(attrs.get(k) == v for k, v in want.items())
        )

    # -- logs

    def log_bodies(self) -> list[Any]:
        return [r.log_record.body for r in self.logs.get_finished_logs()]


def parent_of(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    for other in spans:
        if other.context is not None and other.context.span_id == span.parent.span_id:
            return other
    return None


def tree(spans: Sequence[ReadableSpan]) -> str:
    """The spans as an indented tree (roots in start order), for assertion messages and examples."""
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    ids = {s.context.span_id for s in spans if s.context is not None}
    for s in spans:
        parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(s)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for s in sorted(by_parent.get(parent, []), key=lambda s: s.start_time or 0):
            status = " [ERROR]" if s.status.status_code is StatusCode.ERROR else ""
            links = f" (links: {len(s.links)})" if s.links else ""
            lines.append(f"{'  ' * depth}{s.name} <{s.kind.name}>{status}{links}")
            if s.context is not None:
                walk(s.context.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)
