"""Observability: typed lifecycle events and the adapters that receive them.

The core describes what happens as :class:`Event` objects and hands each to an
:class:`ObservabilityAdapter`. Events about work done inside a transaction are emitted only after that
transaction commits (never for rolled-back work). Adapters must not block and must not raise.

Shipped here: :class:`LoggingObservability` (stdlib ``logging`` with structured ``extra``, the default),
:class:`RecordingObservability` (keeps events in a list; for tests) and :class:`NoopObservability`.
``queuert-otel`` maps the same events to OpenTelemetry metrics, traces and logs.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from queuert._fastinit import fast_init

__all__ = [
    "AttemptCompleted",
    "AttemptFailed",
    "AttemptStarted",
    "BlockerLink",
    "ChainClosed",
    "ChainCreated",
    "ChainDeduplicated",
    "ChainDeleted",
    "ChainsExpired",
    "Event",
    "JobBlocked",
    "JobCompleted",
    "JobCreated",
    "JobInfo",
    "JobReaped",
    "JobTriggered",
    "JobUnblocked",
    "LeaseLost",
    "LeasesRenewed",
    "LoggingObservability",
    "NoopObservability",
    "NotifyAdapterError",
    "ObservabilityAdapter",
    "RecordingObservability",
    "StateAdapterError",
    "WorkerError",
    "WorkerStarted",
    "WorkerStopped",
    "WorkerStopping",
]


@dataclass(frozen=True)
class JobInfo:
    id: str
    type_name: str
    chain_id: str
    chain_type_name: str
    attempt: int = 0
    chain_trace_context: str | None = None
    """The trace context stored with the job's chain (see :mod:`queuert.tracing`)."""
    trace_context: str | None = None
    """The trace context stored with the job (its creation)."""


@dataclass(frozen=True)
class BlockerLink:
    """One blocker of a new job: the chain it waits for, the trace context stored on the link, and
    whether that chain was still open when the link was made (a closed one does not block)."""

    chain_id: str
    trace_context: str | None
    open: bool
    chain_trace_context: str | None = None
    """The trace context stored with the blocker chain."""


@dataclass(frozen=True)
class Event:
    name: ClassVar[str] = "event"
    level: ClassVar[int] = logging.INFO

    def fields(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WorkerStarted(Event):
    name: ClassVar[str] = "worker_started"
    worker_id: str
    type_names: tuple[str, ...]
    concurrency: int


@dataclass(frozen=True)
class WorkerStopping(Event):
    name: ClassVar[str] = "worker_stopping"
    worker_id: str
    in_flight: int


@dataclass(frozen=True)
class WorkerStopped(Event):
    name: ClassVar[str] = "worker_stopped"
    worker_id: str


@dataclass(frozen=True)
class WorkerError(Event):
    name: ClassVar[str] = "worker_error"
    level: ClassVar[int] = logging.ERROR
    worker_id: str
    error: str
    retry_in: float


@dataclass(frozen=True)
class ChainCreated(Event):
    name: ClassVar[str] = "chain_created"
    chain_id: str
    type_name: str
    trace_context: str | None = None
    """The chain's stored trace context."""


@dataclass(frozen=True)
class ChainDeduplicated(Event):
    name: ClassVar[str] = "chain_deduplicated"
    chain_id: str
    type_name: str
    deduplication_key: str | None
    trace_context: str | None = None
    """The trace context handed out for the chain that was not created."""
    job_trace_context: str | None = None
    """The trace context handed out for its first job, not created either."""
    existing_trace_context: str | None = None
    """The trace context of the existing chain that matched."""


@dataclass(frozen=True)
class JobCreated(Event):
    name: ClassVar[str] = "job_created"
    job: JobInfo
    scheduled_at: datetime
    blocked: bool
    origin_trace_context: str | None = None
    """For a continuation: the trace context of the job it continues."""
    blockers: tuple[BlockerLink, ...] = ()
    """The job's blockers in slot order (empty if it has none)."""


@dataclass(frozen=True)
class JobBlocked(Event):
    name: ClassVar[str] = "job_blocked"
    job: JobInfo
    blocker_chain_ids: tuple[str, ...]


@dataclass(frozen=True)
class JobUnblocked(Event):
    name: ClassVar[str] = "job_unblocked"
    job: JobInfo
    by_chain_id: str


@dataclass(frozen=True)
class AttemptStarted(Event):
    name: ClassVar[str] = "job_attempt_started"
    job: JobInfo
    worker_id: str
    waited: float
    """Seconds from when the job became due to when this attempt started."""


@dataclass(frozen=True)
class AttemptCompleted(Event):
    name: ClassVar[str] = "job_attempt_completed"
    job: JobInfo
    worker_id: str
    duration: float
    mode: Literal["atomic", "staged"]
    continued_with: str | None = None


@dataclass(frozen=True)
class AttemptFailed(Event):
    name: ClassVar[str] = "job_attempt_failed"
    level: ClassVar[int] = logging.WARNING
    job: JobInfo
    worker_id: str
    duration: float
    error_type: str
    error: str
    retry_at: datetime | None
    """When the job will be retried; ``None`` if the failure closed the chain as failed."""
    rescheduled_by_handler: bool = False


@dataclass(frozen=True)
class JobCompleted(Event):
    name: ClassVar[str] = "job_completed"
    job: JobInfo
    worker_id: str | None
    """``None`` for workerless completion."""
    duration: float
    """Seconds from creation to completion."""
    continued_with: str | None = None


@dataclass(frozen=True)
class ChainClosed(Event):
    name: ClassVar[str] = "chain_closed"
    chain_id: str
    type_name: str
    outcome: Literal["completed", "failed", "cancelled"]
    duration: float | None
    """Seconds from the chain's start to its close, when known without an extra read."""
    trace_context: str | None = None
    """The chain's stored trace context."""
    blocker_trace_contexts: tuple[str, ...] = ()
    """The trace contexts stored on the blocker links that waited for this chain (now resolved)."""


@dataclass(frozen=True)
class JobReaped(Event):
    name: ClassVar[str] = "job_reaped"
    level: ClassVar[int] = logging.WARNING
    job: JobInfo
    leased_by: str | None
    worker_id: str


@dataclass(frozen=True)
class LeaseLost(Event):
    name: ClassVar[str] = "job_lease_lost"
    level: ClassVar[int] = logging.WARNING
    job: JobInfo
    worker_id: str
    reason: str


@dataclass(frozen=True)
class LeasesRenewed(Event):
    name: ClassVar[str] = "job_leases_renewed"
    level: ClassVar[int] = logging.DEBUG
    worker_id: str
    type_names: tuple[str, ...]
    """The job type of each lease renewed (one entry per job)."""


@dataclass(frozen=True)
class JobTriggered(Event):
    name: ClassVar[str] = "job_triggered"
    job: JobInfo


@dataclass(frozen=True)
class ChainDeleted(Event):
    name: ClassVar[str] = "chain_deleted"
    chain_id: str
    type_name: str


@dataclass(frozen=True)
class ChainsExpired(Event):
    """A retention batch committed: ``deleted`` chains closed before ``cutoff`` were deleted;
    ``skipped`` were kept because a chain outside the batch still waits for them. ``partitions``:
    the chains went with that many partitions dropped whole (``jobs``: the jobs they held; None for
    a batch of row deletes). ``estimated``: ``deleted`` and ``jobs`` are the database's estimates
    of what the partitions held, not counts (a layout configured to skip the count)."""

    name: ClassVar[str] = "chains_expired"
    deleted: int
    skipped: int
    cutoff: datetime
    jobs: int | None = None
    partitions: int = 0
    estimated: bool = False


@dataclass(frozen=True)
class NotifyAdapterError(Event):
    name: ClassVar[str] = "notify_adapter_error"
    level: ClassVar[int] = logging.WARNING
    operation: str
    error: str


@dataclass(frozen=True)
class StateAdapterError(Event):
    name: ClassVar[str] = "state_adapter_error"
    level: ClassVar[int] = logging.WARNING
    operation: str
    error: str


_EVENT_CLASSES: list[type[Any]] = [JobInfo, BlockerLink, *Event.__subclasses__()]
for _event_class in _EVENT_CLASSES:
    fast_init(_event_class)


@runtime_checkable
class ObservabilityAdapter(Protocol):
    """Receives events. An adapter may also define ``listens(level: int) -> bool``: ``False`` for
    events of that logging level means it would drop them, and the core's hot paths (every attempt,
    every completion, every job created) then skip building them. An adapter without it receives
    every event."""

    def emit(self, event: Event) -> None:
        """Receive one event. Must not block or raise."""
        ...


class NoopObservability:
    def emit(self, event: Event) -> None:
        return None

    def listens(self, level: int) -> bool:
        """Never: the core builds no events for it on its hot paths."""
        return False


class LoggingObservability:
    """Logs every event on the ``queuert`` logger with the event's fields under ``extra``.

    The record's message is the event name plus its main fields; ``record.queuert_event`` is the name
    and ``record.queuert`` the fields as a dict, for structured log handlers.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("queuert")

    def listens(self, level: int) -> bool:
        """Whether events of ``level`` would be logged (the logger's level, checked each time)."""
        return self._logger.isEnabledFor(level)

    def emit(self, event: Event) -> None:
        if not self._logger.isEnabledFor(event.level):
            return
        fields = event.fields()
        summary = " ".join(f"{k}={_short(v)}" for k, v in fields.items())
        self._logger.log(
            event.level,
            "%s %s",
            event.name,
            summary,
            extra={"queuert_event": event.name, "queuert": fields},
        )


def _short(value: object) -> str:
    if isinstance(value, dict) and "id" in value and "type_name" in value:
        return f"{value['type_name']}:{value['id']}"
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass
class RecordingObservability:
    """Keeps every event (for tests): ``names()`` lists their names in order."""

    events: list[Event] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [e.name for e in self.events]

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def clear(self) -> None:
        self.events.clear()
