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

    def wants(self, cls: type[Event]) -> bool:
        """Whether events of ``cls`` are sent (their level is a class constant)."""
        return cls.level >= self._level

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


_FIELDS: dict[type[Any], tuple[tuple[str, str], ...]] = {}
"""Per event (or nested dataclass) class: (field name, attribute key) pairs, made once."""


def _fields(cls: type[Any], prefix: str) -> tuple[tuple[str, str], ...]:
    found = _FIELDS.get(cls) if prefix == "queuert" else None
    if found is None:
        found = tuple((f.name, f"{prefix}.{f.name}") for f in fields(cls) if f.name not in _SKIPPED)
        if prefix == "queuert":
            _FIELDS[cls] = found
    return found


_SKIPPED = frozenset({"trace_context", "chain_trace_context", "origin_trace_context"})
"""Fields left out of the attributes: the record carries the trace and span ids."""


def _attributes(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"queuert.event": event.name}
    for name, key in _fields(type(event), "queuert"):
        _flatten(out, key, getattr(event, name))
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
        for name, sub in _fields(type(value), key):
            _flatten(out, sub, getattr(value, name))
    else:
        out[key] = str(value)
