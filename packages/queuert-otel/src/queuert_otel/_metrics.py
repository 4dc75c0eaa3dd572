"""Metrics: queuert's events counted and timed, in both vocabularies (messaging semantic conventions
and ``queuert.*``). Every instrument is listed in the package README."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.metrics import Meter
from opentelemetry.util.types import AttributeValue
from queuert.observability import (
    AttemptCompleted,
    AttemptFailed,
    AttemptStarted,
    ChainClosed,
    ChainCreated,
    ChainDeduplicated,
    ChainDeleted,
    Event,
    JobBlocked,
    JobCompleted,
    JobCreated,
    JobInfo,
    JobReaped,
    JobTriggered,
    JobUnblocked,
    LeaseLost,
    LeasesRenewed,
    NotifyAdapterError,
    StateAdapterError,
    WorkerError,
    WorkerStarted,
    WorkerStopped,
)

from queuert_otel import _attributes as a

__all__ = ["Metrics"]

Attributes = Mapping[str, Any]

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
"""The bucket boundaries the messaging conventions give for their durations (seconds)."""

_LONG_BUCKETS = (0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
"""Job and chain lifetimes and waits: milliseconds to a day."""


class Metrics:
    """Maps each event to its instruments. Attributes are low-cardinality: job and chain types,
    outcomes, error types; never job, chain or worker ids."""

    def __init__(self, meter: Meter) -> None:
        m = meter
        # -- messaging semantic conventions
        self.sent = m.create_counter(
            "messaging.client.sent.messages",
            unit="{message}",
            description="Jobs created (each a message sent to the queue of its type).",
        )
        self.consumed = m.create_counter(
            "messaging.client.consumed.messages",
            unit="{message}",
            description="Jobs claimed by a worker (each a message delivered to a handler).",
        )
        self.process_duration = m.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="Duration of one attempt: the handler and its completion.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        # -- chains
        self.chains_created = m.create_counter(
            "queuert.chain.created", unit="{chain}", description="Chains started."
        )
        self.chains_deduplicated = m.create_counter(
            "queuert.chain.deduplicated",
            unit="{chain}",
            description="Chain starts that matched an existing chain (nothing created).",
        )
        self.chains_closed = m.create_counter(
            "queuert.chain.closed", unit="{chain}", description="Chains closed, by outcome."
        )
        self.chains_deleted = m.create_counter(
            "queuert.chain.deleted", unit="{chain}", description="Chains deleted."
        )
        self.chain_duration = m.create_histogram(
            "queuert.chain.duration",
            unit="s",
            description="From a chain's start to its close (chains closed by their first job).",
            explicit_bucket_boundaries_advisory=_LONG_BUCKETS,
        )
        # -- jobs
        self.jobs_created = m.create_counter(
            "queuert.job.created", unit="{job}", description="Jobs created."
        )
        self.jobs_completed = m.create_counter(
            "queuert.job.completed",
            unit="{job}",
            description="Jobs completed (with an output or a continuation).",
        )
        self.jobs_failed = m.create_counter(
            "queuert.job.failed", unit="{job}", description="Jobs closed as failed."
        )
        self.jobs_cancelled = m.create_counter(
            "queuert.job.cancelled", unit="{job}", description="Jobs closed as cancelled."
        )
        self.jobs_reaped = m.create_counter(
            "queuert.job.reaped",
            unit="{job}",
            description="Jobs whose expired lease a reaper took back.",
        )
        self.jobs_blocked = m.create_counter(
            "queuert.job.blocked", unit="{job}", description="Jobs created waiting for blockers."
        )
        self.jobs_unblocked = m.create_counter(
            "queuert.job.unblocked", unit="{job}", description="Jobs released by their blockers."
        )
        self.jobs_triggered = m.create_counter(
            "queuert.job.triggered", unit="{job}", description="Jobs made ready now by a trigger."
        )
        self.job_duration = m.create_histogram(
            "queuert.job.duration",
            unit="s",
            description="From a job's creation to its completion.",
            explicit_bucket_boundaries_advisory=_LONG_BUCKETS,
        )
        # -- attempts
        self.attempts_started = m.create_counter(
            "queuert.job.attempt.started", unit="{attempt}", description="Attempts started."
        )
        self.attempts_completed = m.create_counter(
            "queuert.job.attempt.completed",
            unit="{attempt}",
            description="Attempts that completed their job.",
        )
        self.attempts_failed = m.create_counter(
            "queuert.job.attempt.failed",
            unit="{attempt}",
            description="Attempts that failed (retried or not).",
        )
        self.attempt_duration = m.create_histogram(
            "queuert.job.attempt.duration",
            unit="s",
            description="Duration of one attempt, by result.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.wait_duration = m.create_histogram(
            "queuert.job.wait.duration",
            unit="s",
            description="From when a job became due to the start of its attempt.",
            explicit_bucket_boundaries_advisory=_LONG_BUCKETS,
        )
        # -- leases and workers
        self.leases_renewed = m.create_counter(
            "queuert.lease.renewed", unit="{lease}", description="Leases renewed."
        )
        self.leases_lost = m.create_counter(
            "queuert.lease.lost",
            unit="{lease}",
            description="Running jobs a worker lost (reaped, cancelled, deleted, taken).",
        )
        self.processing = m.create_up_down_counter(
            "queuert.job_type.processing",
            unit="{job}",
            description="Attempts running now, by job type.",
        )
        self.idle = m.create_up_down_counter(
            "queuert.job_type.idle",
            unit="{slot}",
            description="Free worker slots that could run a job of the type.",
        )
        self.workers = m.create_up_down_counter(
            "queuert.worker.running", unit="{worker}", description="Workers running."
        )
        self.worker_errors = m.create_counter(
            "queuert.worker.errors",
            unit="{error}",
            description="Errors of a worker's loop (it retries after a delay).",
        )
        self.adapter_errors = m.create_counter(
            "queuert.adapter.errors",
            unit="{error}",
            description="Failed state or notify adapter operations that queuert recovered from.",
        )
        self._workers: dict[str, tuple[tuple[str, ...], list[int]]] = {}
        """worker id -> (types it serves, [idle slots])."""
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            ChainCreated: self._chain_created,
            ChainDeduplicated: self._chain_deduplicated,
            ChainClosed: self._chain_closed,
            ChainDeleted: self._chain_deleted,
            JobCreated: self._job_created,
            JobBlocked: self._job_blocked,
            JobUnblocked: self._job_unblocked,
            JobTriggered: self._job_triggered,
            JobReaped: self._job_reaped,
            JobCompleted: self._job_completed,
            AttemptStarted: self._attempt_started,
            AttemptCompleted: self._attempt_completed,
            AttemptFailed: self._attempt_failed,
            LeasesRenewed: self._leases_renewed,
            LeaseLost: self._lease_lost,
            WorkerStarted: self._worker_started,
            WorkerStopped: self._worker_stopped,
            WorkerError: self._worker_error,
            StateAdapterError: self._adapter_error,
            NotifyAdapterError: self._adapter_error,
        }
        self._running: set[tuple[str, int]] = set()
        """(job id, attempt) of the attempts started and not yet ended."""
        self._job_attrs: dict[tuple[str, str], dict[str, str]] = {}
        self._messaging: dict[tuple[str, str], dict[str, str]] = {}

    def record(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    # -- attribute sets (cached: a handful of types, reused for every event)

    def _job(self, job: JobInfo) -> dict[str, str]:
        key = (job.type_name, job.chain_type_name)
        found = self._job_attrs.get(key)
        if found is None:
            found = self._job_attrs[key] = {
                a.JOB_TYPE: job.type_name,
                a.CHAIN_TYPE: job.chain_type_name,
            }
        return found

    def _msg(self, type_name: str, operation: str) -> dict[str, str]:
        key = (type_name, operation)
        found = self._messaging.get(key)
        if found is None:
            kind = {"create": "send", "claim": "receive", "process": "process"}[operation]
            found = self._messaging[key] = {
                a.MESSAGING_SYSTEM: a.SYSTEM,
                a.DESTINATION: type_name,
                a.OPERATION_NAME: operation,
                a.OPERATION_TYPE: kind,
            }
        return found

    # -- handlers

    def _chain_created(self, e: ChainCreated) -> None:
        self.chains_created.add(1, {a.CHAIN_TYPE: e.type_name})

    def _chain_deduplicated(self, e: ChainDeduplicated) -> None:
        self.chains_deduplicated.add(1, {a.CHAIN_TYPE: e.type_name})

    def _chain_closed(self, e: ChainClosed) -> None:
        self.chains_closed.add(1, {a.CHAIN_TYPE: e.type_name, a.CHAIN_OUTCOME: e.outcome})
        if e.duration is not None:
            self.chain_duration.record(
                e.duration, {a.CHAIN_TYPE: e.type_name, a.CHAIN_OUTCOME: e.outcome}
            )
        # failing or cancelling a job always closes its chain: count the job here
        if e.outcome == "failed":
            self.jobs_failed.add(1, {a.CHAIN_TYPE: e.type_name})
        elif e.outcome == "cancelled":
            self.jobs_cancelled.add(1, {a.CHAIN_TYPE: e.type_name})

    def _chain_deleted(self, e: ChainDeleted) -> None:
        self.chains_deleted.add(1, {a.CHAIN_TYPE: e.type_name})

    def _job_created(self, e: JobCreated) -> None:
        self.jobs_created.add(1, self._job(e.job))
        self.sent.add(1, self._msg(e.job.type_name, "create"))

    def _job_blocked(self, e: JobBlocked) -> None:
        self.jobs_blocked.add(1, self._job(e.job))

    def _job_unblocked(self, e: JobUnblocked) -> None:
        self.jobs_unblocked.add(1, self._job(e.job))

    def _job_triggered(self, e: JobTriggered) -> None:
        self.jobs_triggered.add(1, self._job(e.job))

    def _job_reaped(self, e: JobReaped) -> None:
        self.jobs_reaped.add(1, self._job(e.job))

    def _job_completed(self, e: JobCompleted) -> None:
        attrs: dict[str, AttributeValue] = {
            **self._job(e.job),
            a.CONTINUED: e.continued_with is not None,
            a.WORKERLESS: e.worker_id is None,
        }
        self.jobs_completed.add(1, attrs)
        self.job_duration.record(e.duration, self._job(e.job))

    def _attempt_started(self, e: AttemptStarted) -> None:
        attrs = self._job(e.job)
        self.attempts_started.add(1, attrs)
        self.consumed.add(1, self._msg(e.job.type_name, "claim"))
        self.wait_duration.record(e.waited, attrs)
        self._running.add((e.job.id, e.job.attempt))
        self.processing.add(1, {a.JOB_TYPE: e.job.type_name})
        self._slots(e.worker_id, -1)

    def _attempt_completed(self, e: AttemptCompleted) -> None:
        attrs = self._job(e.job)
        self.attempts_completed.add(1, attrs)
        self.attempt_duration.record(e.duration, {**attrs, a.MODE: e.mode})
        self.process_duration.record(e.duration, self._msg(e.job.type_name, "process"))
        self._attempt_ended(e.job, e.worker_id)

    def _attempt_failed(self, e: AttemptFailed) -> None:
        attrs: dict[str, AttributeValue] = {
            **self._job(e.job),
            a.ERROR_TYPE: e.error_type,
            a.RETRIED: e.retry_at is not None,
        }
        self.attempts_failed.add(1, attrs)
        self.attempt_duration.record(e.duration, attrs)
        self.process_duration.record(
            e.duration, {**self._msg(e.job.type_name, "process"), a.ERROR_TYPE: e.error_type}
        )
        self._attempt_ended(e.job, e.worker_id)

    def _lease_lost(self, e: LeaseLost) -> None:
        self.leases_lost.add(1, {**self._job(e.job), a.LEASE_LOST_REASON: e.reason})
        self._attempt_ended(e.job, e.worker_id)

    def _attempt_ended(self, job: JobInfo, worker_id: str) -> None:
        key = (job.id, job.attempt)
        if key not in self._running:
            return  # failed before it started (a blocker failed), or already ended
        self._running.discard(key)
        self.processing.add(-1, {a.JOB_TYPE: job.type_name})
        self._slots(worker_id, +1)

    def _leases_renewed(self, e: LeasesRenewed) -> None:
        counts: dict[str, int] = {}
        for name in e.type_names:
            counts[name] = counts.get(name, 0) + 1
        for name, count in counts.items():
            self.leases_renewed.add(count, {a.JOB_TYPE: name})

    def _worker_started(self, e: WorkerStarted) -> None:
        self.workers.add(1)
        self._workers[e.worker_id] = (e.type_names, [e.concurrency])
        for name in e.type_names:
            self.idle.add(e.concurrency, {a.JOB_TYPE: name})

    def _worker_stopped(self, e: WorkerStopped) -> None:
        self.workers.add(-1)
        found = self._workers.pop(e.worker_id, None)
        if found is not None:
            names, idle = found
            for name in names:
                self.idle.add(-idle[0], {a.JOB_TYPE: name})

    def _slots(self, worker_id: str, delta: int) -> None:
        """A slot of ``worker_id`` was taken (-1) or freed (+1): one fewer or more idle slot for
        every type the worker serves."""
        found = self._workers.get(worker_id)
        if found is None:
            return
        names, idle = found
        idle[0] += delta
        for name in names:
            self.idle.add(delta, {a.JOB_TYPE: name})

    def _worker_error(self, e: WorkerError) -> None:
        self.worker_errors.add(1)

    def _adapter_error(self, e: StateAdapterError | NotifyAdapterError) -> None:
        adapter = "state" if isinstance(e, StateAdapterError) else "notify"
        self.adapter_errors.add(1, {a.ADAPTER: adapter, a.ADAPTER_OPERATION: e.operation})
