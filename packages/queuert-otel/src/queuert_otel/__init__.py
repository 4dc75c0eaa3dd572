"""queuert-otel: OpenTelemetry metrics, traces and logs for queuert.

``Client(state, observability=OtelObservability(tracer_provider=..., meter_provider=...,
logger_provider=...))``; see the package README for every instrument and span.
"""

from queuert_otel._queue_health import QueueHealth
from queuert_otel.observability import SCOPE, OtelObservability

__all__ = ["SCOPE", "OtelObservability", "QueueHealth"]
