"""Logs: queuert's events as OpenTelemetry log records, through the Logs API.

Each record has the event's name as ``event_name`` and body, its severity, its fields as attributes
(flattened, ``queuert.`` prefixed; ids are fine here, unlike on metrics) and, when it is about an
attempt that has a span, that span's trace and span ids (else the active span's).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import Logger, LogRecord, SeverityNumber
from opentelemetry.trace import SpanContext
from queuert.observability import Event

__all__ = ["Logs"]

_SEVERITY = {
    logging.DEBUG: (SeverityNumber.DEBUG, "DEBUG"),
    logging.INFO: (SeverityNumber.INFO, "INFO"),
    logging.WARNING: (SeverityNumber.WARN, "WARN"),
    logging.ERROR: (SeverityNumber.ERROR, "ERROR"),
}

_PARAMETERS = inspect.signature(LogRecord.__init__).parameters
_WITH_CONTEXT = "context" in _PARAMETERS
"""The Logs API takes the record's context (newer versions) besides its trace and span ids."""
_WITH_EVENT_NAME = "event_name" in _PARAMETERS


class Logs:
    """The logging part of :class:`~queuert_otel.OtelObservability`."""

    def __init__(
        self, logger: Logger, level: int, span_of: Callable[[Event], SpanContext | None]
    ) -> None:
        self._logger = logger
        self._level = level
        self._span_of = span_of

    def record(self, event: Event) -> None:
        if event.level < self._level:
            return
        severity, text = _SEVERITY.get(event.level, (SeverityNumber.INFO, "INFO"))
        span = self._span_of(event)
        if span is None:
            span = trace.get_current_span().get_span_context()
        extra: dict[str, Any] = {}
        if _WITH_CONTEXT:
            extra["context"] = trace.set_span_in_context(trace.NonRecordingSpan(span))
        if _WITH_EVENT_NAME:
            extra["event_name"] = f"queuert.{event.name}"
        record = LogRecord(
            timestamp=time.time_ns(),
            trace_id=span.trace_id,
            span_id=span.span_id,
            trace_flags=span.trace_flags,
            severity_number=severity,
            severity_text=text,
            body=event.name,
            attributes=_attributes(event),
            **extra,
        )
        self._logger.emit(record)


def _attributes(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"queuert.event": event.name}
    for f in fields(event):
        _flatten(out, f"queuert.{f.name}", getattr(event, f.name))
    return out


def _flatten(out: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, (str, bool, int, float)):
        out[key] = value
    elif isinstance(value, datetime):
        out[key] = value.isoformat()
    elif isinstance(value, tuple):
        if all(isinstance(v, str) for v in value):
            out[key] = list(value)
        else:
            out[key] = [str(v) for v in value]
    elif hasattr(value, "__dataclass_fields__"):
        for f in fields(value):
            _flatten(out, f"{key}.{f.name}", getattr(value, f.name))
    else:
        out[key] = str(value)
