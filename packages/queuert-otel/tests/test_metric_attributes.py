"""The attribute sets that queuert-otel builds once and reuses (per job type, outcome, error type):
every event still lands on the data point of its own attributes, with its value."""

from __future__ import annotations

import functools
import operator
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import use_span
from queuert.observability import AttemptFailed, ChainClosed, Event, JobCompleted, JobInfo
from queuert_otel import OtelObservability

TYPES = ("a", "b")
ERRORS = ("KeyError", "ValueError", "TimeoutError")
OUTCOMES = ("completed", "failed", "cancelled")

completed = st.builds(
    lambda t, continued, workerless, d: JobCompleted(
        JobInfo("j", t, "c", t, 1), None if workerless else "w", d, "next" if continued else None
    ),
    st.sampled_from(TYPES),
    st.booleans(),
    st.booleans(),
    st.floats(0, 100),
)
failed = st.builds(
    lambda t, error, retried, d: AttemptFailed(
        JobInfo("j", t, "c", t, 1),
        "w",
        d,
        error,
        "boom",
        datetime(2030, 1, 1, tzinfo=timezone.utc) if retried else None,
    ),
    st.sampled_from(TYPES),
    st.sampled_from(ERRORS),
    st.booleans(),
    st.floats(0, 100),
)
closed = st.builds(
    lambda t, outcome, d: ChainClosed("c", t, outcome, d),
    st.sampled_from(TYPES),
    st.sampled_from(OUTCOMES),
    st.one_of(st.none(), st.floats(0, 100)),
)


def points(reader: InMemoryMetricReader) -> dict[str, dict[frozenset[Any], Any]]:
    out: dict[str, dict[frozenset[Any], Any]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = frozenset((point.attributes or {}).items())
                    out.setdefault(metric.name, {})[key] = point
    return out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(completed, failed, closed), max_size=30))
def test_each_event_counts_under_its_own_attributes(events: list[Event]) -> None:
    reader = InMemoryMetricReader()
    otel = OtelObservability(meter_provider=MeterProvider(metric_readers=[reader]))
    # recorded inside a sampled span: queuert's histograms still take no exemplar from it, since
    # the span current when an event is reported is not the one of the job it measures
    with use_span(TracerProvider().get_tracer("t").start_span("elsewhere"), end_on_exit=True):
        for event in events:
            otel.emit(event)

    want_completed: Counter[frozenset[Any]] = Counter()
    want_failed: Counter[frozenset[Any]] = Counter()
    want_process: dict[frozenset[Any], list[float]] = {}
    want_closed: Counter[frozenset[Any]] = Counter()
    want_chain: dict[frozenset[Any], list[float]] = {}
    for e in events:
        if isinstance(e, JobCompleted):
            job = {"queuert.job.type": e.job.type_name, "queuert.chain.type": e.job.type_name}
            want_completed[
                frozenset(
                    {
                        **job,
                        "queuert.job.continued": e.continued_with is not None,
                        "queuert.job.workerless": e.worker_id is None,
                    }.items()
                )
            ] += 1
        elif isinstance(e, AttemptFailed):
            job = {"queuert.job.type": e.job.type_name, "queuert.chain.type": e.job.type_name}
            want_failed[
                frozenset(
                    {
                        **job,
                        "error.type": e.error_type,
                        "queuert.job.retried": e.retry_at is not None,
                    }.items()
                )
            ] += 1
            process = {
                "messaging.system": "queuert",
                "messaging.destination.name": e.job.type_name,
                "messaging.operation.name": "process",
                "messaging.operation.type": "process",
                "error.type": e.error_type,
            }
            want_process.setdefault(frozenset(process.items()), []).append(e.duration)
        elif isinstance(e, ChainClosed):
            key = frozenset(
                {"queuert.chain.type": e.type_name, "queuert.chain.outcome": e.outcome}.items()
            )
            want_closed[key] += 1
            if e.duration is not None:
                want_chain.setdefault(key, []).append(e.duration)

    got = points(reader) if events else {}

    def sums(name: str) -> dict[frozenset[Any], Any]:
        return {k: p.value for k, p in got.get(name, {}).items()}

    assert sums("queuert.job.completed") == dict(want_completed)
    assert sums("queuert.job.attempt.failed") == dict(want_failed)
    assert sums("queuert.chain.closed") == dict(want_closed)
    for name, want in (
        ("messaging.process.duration", want_process),
        ("queuert.chain.duration", want_chain),
    ):
        histograms: dict[frozenset[Any], HistogramDataPoint] = got.get(name, {})
        assert set(histograms) == set(want)
        for key, values in want.items():
            point = histograms[key]
            assert point.count == len(values)
            # added one by one, as the SDK does (Python 3.12's sum() compensates rounding)
            assert point.sum == functools.reduce(operator.add, values, 0.0)
            assert point.exemplars == []
