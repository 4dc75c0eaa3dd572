"""``OtelObservability``: queuert's events as OpenTelemetry metrics, traces and logs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from contextvars import Token
from datetime import timedelta
from typing import Any

from opentelemetry import context, trace
from opentelemetry._logs import LoggerProvider
from opentelemetry.context import Context
from opentelemetry.metrics import Meter, MeterProvider
from opentelemetry.trace import Span, SpanContext, TracerProvider
from queuert.observability import AttemptStarted, Event, JobInfo
from queuert.tracing import AttemptScopes, TraceContexts

from queuert_otel._logs import Logs
from queuert_otel._metrics import Metrics
from queuert_otel._queue_health import QueueHealth
from queuert_otel._traces import Traces, span_context

__all__ = ["SCOPE", "OtelObservability"]

logger = logging.getLogger("queuert.otel")

SCOPE = "queuert"
"""The instrumentation scope name of every meter, tracer and logger."""


def _version() -> str:
    try:
        from queuert import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "0"


class OtelObservability(TraceContexts, AttemptScopes):
    """An observability adapter for ``Client(observability=...)`` (and so for its workers).

    ``tracer_provider``, ``meter_provider`` and ``logger_provider`` are each optional: what is not
    given is not produced (pass the global providers, e.g. ``opentelemetry.trace.get_tracer_provider()``,
    to use what the application configured). Everything is exported only after the transaction that
    did the work commits. Nothing here blocks the event loop or raises into queuert: a failure is
    logged on the ``queuert.otel`` logger and the event dropped.

    ``log_level`` is the lowest level of the events sent as log records. The default, ``WARNING``,
    sends what needs attention (failed attempts, reaped jobs, lost leases, adapter and worker
    errors): every other event of a job is already a span and a metric. ``logging.INFO`` sends
    every lifecycle event too, ``logging.DEBUG`` also the lease renewals. Queue-health gauges need
    a client to read from: see :meth:`watch`.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        logger_provider: LoggerProvider | None = None,
        log_level: int = logging.WARNING,
    ) -> None:
        version = _version()
        self._meter: Meter | None = None
        self._metrics: Metrics | None = None
        self._traces: Traces | None = None
        self._logs: Logs | None = None
        if meter_provider is not None:
            self._meter = meter_provider.get_meter(SCOPE, version)
            self._metrics = Metrics(self._meter)
        if tracer_provider is not None:
            self._traces = Traces(tracer_provider.get_tracer(SCOPE, version))
        if logger_provider is not None:
            self._logs = Logs(logger_provider.get_logger(SCOPE, version), log_level, self._span_of)
        self._health: list[QueueHealth] = []
        self._dispatch: dict[type[Event], tuple[tuple[Callable[[Any], None], str], ...]] = {}
        """Per event class, the handlers it goes through (see :meth:`_steps`)."""

    # -- ObservabilityAdapter

    def emit(self, event: Event) -> None:
        cls = type(event)
        steps = self._dispatch.get(cls)
        if steps is None:
            steps = self._dispatch[cls] = self._steps(cls)
        for step, what in steps:
            try:
                step(event)
            except Exception:
                logger.exception("recording %s failed", what, extra={"queuert_event": event.name})

    def _steps(self, cls: type[Event]) -> tuple[tuple[Callable[[Any], None], str], ...]:
        """What an event of ``cls`` goes through, in order, found once per event class: only the
        parts that do something with it (no call at all for an event a part ignores)."""
        steps: list[tuple[Callable[[Any], None], str]] = []
        if self._metrics is not None and (handler := self._metrics.handler(cls)) is not None:
            steps.append((handler, "metrics"))
        logs = self._logs
        log = logs is not None and logs.wants(cls)
        if logs is not None and log and not issubclass(cls, AttemptStarted):
            steps.append((logs.record, "logs"))  # before the attempt's span ends, to carry its ids
        if self._traces is not None and (handler := self._traces.handler(cls)) is not None:
            steps.append((handler, "traces"))
        if logs is not None and log and issubclass(cls, AttemptStarted):
            steps.append((logs.record, "logs"))  # after the attempt's span starts
        return tuple(steps)

    # -- TraceContexts (the client calls these only if a tracer provider was given)

    def start_chain(self, chain_type_name: str) -> str | None:
        if self._traces is None:
            return None
        try:
            return self._traces.start_chain(chain_type_name)
        except Exception:
            logger.exception("starting a chain span failed")
            return None

    def start_job(
        self,
        type_name: str,
        chain_type_name: str,
        chain_trace_context: str | None,
        origin_trace_context: str | None,
    ) -> str | None:
        if self._traces is None:
            return None
        try:
            return self._traces.start_job(
                type_name, chain_type_name, chain_trace_context, origin_trace_context
            )
        except Exception:
            logger.exception("starting a job span failed")
            return None

    def start_blockers(
        self, trace_context: str | None, blocker_chain_ids: Sequence[str]
    ) -> list[str | None]:
        if self._traces is None:
            return [None] * len(blocker_chain_ids)
        try:
            return self._traces.start_blockers(trace_context, blocker_chain_ids)
        except Exception:
            logger.exception("starting blocker spans failed")
            return [None] * len(blocker_chain_ids)

    def abandon(self, trace_contexts: Sequence[str]) -> None:
        if self._traces is None:
            return
        try:
            self._traces.abandon(trace_contexts)
        except Exception:
            logger.exception("abandoning spans failed")

    # -- AttemptScopes: the handler runs with its attempt's span as the current span

    def attempt_scope(self, job: JobInfo) -> AbstractContextManager[object] | None:
        traces = self._traces
        if traces is None:
            return None
        span = traces.attempt_span(job)
        if span is None:
            return None
        return _Current(span)

    # -- queue health

    @asynccontextmanager
    async def watch(
        self,
        client: Any,
        *,
        min_interval: timedelta | float = 10.0,
        timeout: timedelta | float = 5.0,
        type_names: Sequence[str] | None = None,
    ) -> AsyncIterator[QueueHealth | None]:
        """Report the queue-health gauges of ``client``'s store while the block runs (on the event
        loop that runs it): ``async with otel.watch(client): ...``.

        The gauges (``queuert.queue.*``) are read with ``client.get_queue_stats(type_names)`` when a
        metric reader collects, at most once per ``min_interval`` however many readers collect; a
        reader on another thread waits up to ``timeout`` for a fresh reading. Yields the
        :class:`~queuert_otel._queue_health.QueueHealth` (``None`` without a meter provider).
        """
        if self._meter is None:
            yield None
            return
        health = QueueHealth(
            self._meter,
            client,
            min_interval=_seconds(min_interval),
            timeout=_seconds(timeout),
            type_names=None if type_names is None else list(type_names),
        )
        self._health.append(health)
        try:
            yield health
        finally:
            self._health.remove(health)
            await health.close()

    # -- helpers

    def _span_of(self, event: Event) -> SpanContext | None:
        """The span a log record of ``event`` belongs to: the attempt's, else the job's or the
        chain's creation span."""
        traces = self._traces
        job = getattr(event, "job", None)
        if isinstance(job, JobInfo):
            if traces is not None:
                span = traces.attempt_span(job)
                if span is not None:
                    return span.get_span_context()
            return _span_context(job.trace_context)
        return _span_context(getattr(event, "trace_context", None))


class _Current(AbstractContextManager[object]):
    """``span`` as the current span while the block runs (what ``trace.use_span`` does without
    ending or annotating the span, for less work per attempt)."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._token: Token[Context] | None = None

    def __enter__(self) -> object:
        self._token = context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            context.detach(self._token)
            self._token = None


def _span_context(value: object) -> SpanContext | None:
    return span_context(value) if isinstance(value, str) else None


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
