"""Metrics: queuert's events counted and timed, in both vocabularies (messaging semantic conventions
and ``queuert.*``). Every instrument is listed in the package README."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Meter, Observation
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

Key = tuple[tuple[str, AttributeValue], ...]
"""An attribute set as a hashable tuple of (name, value) pairs."""

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
"""The bucket boundaries the messaging conventions give for their durations (seconds)."""

_NO_SPAN: Context = trace.set_span_in_context(trace.INVALID_SPAN, Context())
"""The context histograms are recorded in: no span (explicitly: an empty context would mean the
current one), so no exemplar. Events are recorded after the
commit, in whichever task flushes it (one flush reports many jobs), so the current span there is
not the span of the job measured; the attempt spans carry the durations instead."""

_MAX_ERROR_TYPES = 64
"""Error types whose failed-attempt attributes are kept per job type (more are built per event)."""

_LONG_BUCKETS = (0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
"""Job and chain lifetimes and waits: milliseconds to a day."""


class _Sum:
    """A counter or up-down counter summed here and reported by an observable instrument when a
    reader collects: an event costs one dict update instead of an SDK measurement (the SDK's
    per-measurement attribute handling would cost more than the work it measures)."""

    __slots__ = ("_values", "sources")

    def __init__(
        self, meter: Meter, name: str, unit: str, description: str, *, monotonic: bool = True
    ) -> None:
        self._values: dict[Key, int] = {}
        self.sources: list[Callable[[], Iterable[tuple[Key, int]]]] = []
        """More (key, value) pairs read at collection: counts kept elsewhere (a plain integer
        field per attribute set, for the events of every job), added to the summed ones."""
        create = (
            meter.create_observable_counter
            if monotonic
            else meter.create_observable_up_down_counter
        )
        create(name, callbacks=[self._observe], unit=unit, description=description)

    def add(self, amount: int, key: Key = ()) -> None:
        values = self._values
        values[key] = values.get(key, 0) + amount

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        # a collection may run on another thread: copy first (atomic under the GIL)
        values = self._values.copy()
        for source in self.sources:
            for key, value in source():
                values[key] = values.get(key, 0) + value
        return [Observation(value, dict(key)) for key, value in values.items()]


class Metrics:
    """Maps each event to its instruments. Attributes are low-cardinality: job and chain types,
    outcomes, error types; never job, chain or worker ids."""

    def __init__(self, meter: Meter) -> None:
        m = meter
        # -- messaging semantic conventions
        self.sent = _Sum(
            m,
            "messaging.client.sent.messages",
            "{message}",
            "Jobs created (each a message sent to the queue of its type).",
        )
        self.consumed = _Sum(
            m,
            "messaging.client.consumed.messages",
            "{message}",
            "Jobs claimed by a worker (each a message delivered to a handler).",
        )
        self.process_duration = m.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="Duration of one attempt: the handler and its completion (also queuert's "
            "attempt duration).",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        # -- chains
        self.chains_created = _Sum(m, "queuert.chain.created", "{chain}", "Chains started.")
        self.chains_deduplicated = _Sum(
            m,
            "queuert.chain.deduplicated",
            "{chain}",
            "Chain starts that matched an existing chain (nothing created).",
        )
        self.chains_closed = _Sum(
            m, "queuert.chain.closed", "{chain}", "Chains closed, by outcome."
        )
        self.chains_deleted = _Sum(m, "queuert.chain.deleted", "{chain}", "Chains deleted.")
        self.chain_duration = m.create_histogram(
            "queuert.chain.duration",
            unit="s",
            description="From a chain's start to its close (chains closed by their first job).",
            explicit_bucket_boundaries_advisory=_LONG_BUCKETS,
        )
        # -- jobs
        self.jobs_created = _Sum(m, "queuert.job.created", "{job}", "Jobs created.")
        self.jobs_completed = _Sum(
            m,
            "queuert.job.completed",
            "{job}",
            "Jobs completed (with an output or a continuation).",
        )
        self.jobs_failed = _Sum(m, "queuert.job.failed", "{job}", "Jobs closed as failed.")
        self.jobs_cancelled = _Sum(m, "queuert.job.cancelled", "{job}", "Jobs closed as cancelled.")
        self.jobs_reaped = _Sum(
            m, "queuert.job.reaped", "{job}", "Jobs whose expired lease a reaper took back."
        )
        self.jobs_blocked = _Sum(
            m, "queuert.job.blocked", "{job}", "Jobs created waiting for blockers."
        )
        self.jobs_unblocked = _Sum(
            m, "queuert.job.unblocked", "{job}", "Jobs released by their blockers."
        )
        self.jobs_triggered = _Sum(
            m, "queuert.job.triggered", "{job}", "Jobs made ready now by a trigger."
        )
        self.job_duration = m.create_histogram(
            "queuert.job.duration",
            unit="s",
            description="From a job's creation to its completion.",
            explicit_bucket_boundaries_advisory=_LONG_BUCKETS,
        )
        # -- attempts
        self.attempts_started = _Sum(
            m, "queuert.job.attempt.started", "{attempt}", "Attempts started."
        )
        self.attempts_completed = _Sum(
            m,
            "queuert.job.attempt.completed",
            "{attempt}",
            "Attempts that completed their job.",
        )
        self.attempts_failed = _Sum(
            m,
            "queuert.job.attempt.failed",
            "{attempt}",
            "Attempts that failed (retried or not).",
        )
        self.wait_duration = m.create_histogram(
            "queuert.job.wait.duration",
            unit="s",
            description="From when a job became due to the start of its attempt.",
            explicit_bucket_boundaries_advisory=_LONG_BUCKETS,
        )
        # -- leases and workers
        self.leases_renewed = _Sum(m, "queuert.lease.renewed", "{lease}", "Leases renewed.")
        self.leases_lost = _Sum(
            m,
            "queuert.lease.lost",
            "{lease}",
            "Running jobs a worker lost (reaped, cancelled, deleted, taken).",
        )
        self.processing = _Sum(
            m,
            "queuert.job_type.processing",
            "{job}",
            "Attempts running now, by job type.",
            monotonic=False,
        )
        self.idle = _Sum(
            m,
            "queuert.job_type.idle",
            "{slot}",
            "Free worker slots that could run a job of the type.",
            monotonic=False,
        )
        self.workers = _Sum(
            m, "queuert.worker.running", "{worker}", "Workers running.", monotonic=False
        )
        self.worker_errors = _Sum(
            m,
            "queuert.worker.errors",
            "{error}",
            "Errors of a worker's loop (it retries after a delay).",
        )
        self.adapter_errors = _Sum(
            m,
            "queuert.adapter.errors",
            "{error}",
            "Failed state or notify adapter operations that queuert recovered from.",
        )
        self._workers: dict[str, tuple[tuple[Key, ...], list[int]]] = {}
        """worker id -> (the keys of the types it serves, [idle slots])."""
        self._running: set[tuple[str, int]] = set()
        """(job id, attempt) of the attempts started and not yet ended."""
        self._keys: dict[tuple[str, str], _Keys] = {}
        self._last: _Keys | None = None
        """The attribute sets of the last job seen (most events are about the same type)."""
        self._closed: dict[tuple[str, str], _Closed] = {}
        """(chain type, outcome) -> the key, attributes and count of a closed chain."""
        # the counts of every processed job: integer fields of its attribute sets, read at
        # collection (an event costs an increment, not a keyed update)
        self.attempts_started.sources.append(lambda: self._counts("job", "started"))
        self.consumed.sources.append(lambda: self._counts("claim", "started"))
        self.attempts_completed.sources.append(lambda: self._counts("job", "attempts_completed"))
        self.processing.sources.append(self._running_counts)
        self.jobs_completed.sources.append(self._completed_counts)
        self.chains_closed.sources.append(
            lambda: [(c.key, c.count) for c in list(self._closed.values()) if c.count]
        )
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

    def record(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def handler(self, cls: type[Event]) -> Callable[[Any], None] | None:
        """What records an event of ``cls`` (``None``: nothing to do for it)."""
        return self._handlers.get(cls)

    def _k(self, job: JobInfo) -> _Keys:
        """The attribute sets of a (job type, chain type), made once."""
        last = self._last
        if (
            last is not None
            and last.type_name == job.type_name
            and last.chain_type_name == job.chain_type_name
        ):
            return last
        found = self._keys.get((job.type_name, job.chain_type_name))
        if found is None:
            found = self._keys[(job.type_name, job.chain_type_name)] = _Keys(
                job.type_name, job.chain_type_name
            )
        self._last = found
        return found

    def _counts(self, key: str, count: str) -> list[tuple[Key, int]]:
        return [(getattr(k, key), n) for k in list(self._keys.values()) if (n := getattr(k, count))]

    def _running_counts(self) -> list[tuple[Key, int]]:
        # reported from a type's first attempt on, zero included (an up-down counter)
        return [(k.type, k.running) for k in list(self._keys.values()) if k.started]

    def _completed_counts(self) -> list[tuple[Key, int]]:
        return [
            (key, n)
            for k in list(self._keys.values())
            for key, n in zip(k.completed, list(k.jobs_completed), strict=True)
            if n
        ]

    # -- handlers

    def _chain_created(self, e: ChainCreated) -> None:
        self.chains_created.add(1, ((a.CHAIN_TYPE, e.type_name),))

    def _chain_deduplicated(self, e: ChainDeduplicated) -> None:
        self.chains_deduplicated.add(1, ((a.CHAIN_TYPE, e.type_name),))

    def _chain_closed(self, e: ChainClosed) -> None:
        found = self._closed.get((e.type_name, e.outcome))
        if found is None:
            found = self._closed[(e.type_name, e.outcome)] = _Closed(e.type_name, e.outcome)
        found.count += 1
        if e.duration is not None:
            self.chain_duration.record(e.duration, found.attributes, _NO_SPAN)
        # failing or cancelling a job always closes its chain: count the job here
        if e.outcome == "failed":
            self.jobs_failed.add(1, ((a.CHAIN_TYPE, e.type_name),))
        elif e.outcome == "cancelled":
            self.jobs_cancelled.add(1, ((a.CHAIN_TYPE, e.type_name),))

    def _chain_deleted(self, e: ChainDeleted) -> None:
        self.chains_deleted.add(1, ((a.CHAIN_TYPE, e.type_name),))

    def _job_created(self, e: JobCreated) -> None:
        k = self._k(e.job)
        self.jobs_created.add(1, k.job)
        self.sent.add(1, k.create)

    def _job_blocked(self, e: JobBlocked) -> None:
        self.jobs_blocked.add(1, self._k(e.job).job)

    def _job_unblocked(self, e: JobUnblocked) -> None:
        self.jobs_unblocked.add(1, self._k(e.job).job)

    def _job_triggered(self, e: JobTriggered) -> None:
        self.jobs_triggered.add(1, self._k(e.job).job)

    def _job_reaped(self, e: JobReaped) -> None:
        self.jobs_reaped.add(1, self._k(e.job).job)

    def _job_completed(self, e: JobCompleted) -> None:
        k = self._k(e.job)
        k.jobs_completed[(e.continued_with is not None) * 2 + (e.worker_id is None)] += 1
        self.job_duration.record(e.duration, k.job_attributes, _NO_SPAN)

    def _attempt_started(self, e: AttemptStarted) -> None:
        k = self._k(e.job)
        k.started += 1  # attempts started, and messages consumed
        self.wait_duration.record(e.waited, k.job_attributes, _NO_SPAN)
        self._running.add((e.job.id, e.job.attempt))
        k.running += 1
        self._slots(e.worker_id, -1)

    def _attempt_completed(self, e: AttemptCompleted) -> None:
        k = self._k(e.job)
        k.attempts_completed += 1
        attributes = k.atomic if e.mode == "atomic" else k.staged
        self.process_duration.record(e.duration, attributes, _NO_SPAN)
        self._attempt_ended(e.job, e.worker_id)

    def _attempt_failed(self, e: AttemptFailed) -> None:
        k = self._k(e.job)
        key: Key = (*k.job, (a.ERROR_TYPE, e.error_type), (a.RETRIED, e.retry_at is not None))
        self.attempts_failed.add(1, key)
        failed = k.failed.get(e.error_type)
        if failed is None:
            failed = {**k.process, a.ERROR_TYPE: e.error_type}
            if len(k.failed) < _MAX_ERROR_TYPES:
                k.failed[e.error_type] = failed
        self.process_duration.record(e.duration, failed, _NO_SPAN)
        self._attempt_ended(e.job, e.worker_id)

    def _lease_lost(self, e: LeaseLost) -> None:
        self.leases_lost.add(1, (*self._k(e.job).job, (a.LEASE_LOST_REASON, e.reason)))
        self._attempt_ended(e.job, e.worker_id)

    def _attempt_ended(self, job: JobInfo, worker_id: str) -> None:
        key = (job.id, job.attempt)
        if key not in self._running:
            return  # failed before it started (a blocker failed), or already ended
        self._running.discard(key)
        self._k(job).running -= 1
        self._slots(worker_id, +1)

    def _leases_renewed(self, e: LeasesRenewed) -> None:
        for name in e.type_names:
            self.leases_renewed.add(1, ((a.JOB_TYPE, name),))

    def _worker_started(self, e: WorkerStarted) -> None:
        self.workers.add(1)
        keys: tuple[Key, ...] = tuple(((a.JOB_TYPE, name),) for name in e.type_names)
        self._workers[e.worker_id] = (keys, [e.concurrency])
        for key in keys:
            self.idle.add(e.concurrency, key)

    def _worker_stopped(self, e: WorkerStopped) -> None:
        self.workers.add(-1)
        found = self._workers.pop(e.worker_id, None)
        if found is not None:
            keys, idle = found
            for key in keys:
                self.idle.add(-idle[0], key)

    def _slots(self, worker_id: str, delta: int) -> None:
        """A slot of ``worker_id`` was taken (-1) or freed (+1): one fewer or more idle slot for
        every type the worker serves."""
        found = self._workers.get(worker_id)
        if found is None:
            return
        keys, idle = found
        idle[0] += delta
        add = self.idle.add
        for key in keys:
            add(delta, key)

    def _worker_error(self, e: WorkerError) -> None:
        self.worker_errors.add(1)

    def _adapter_error(self, e: StateAdapterError | NotifyAdapterError) -> None:
        adapter = "state" if isinstance(e, StateAdapterError) else "notify"
        self.adapter_errors.add(1, ((a.ADAPTER, adapter), (a.ADAPTER_OPERATION, e.operation)))


class _Keys:
    """The attribute sets of one (job type, chain type), built once and reused by every event."""

    __slots__ = (
        "atomic",
        "attempts_completed",
        "chain_type_name",
        "claim",
        "completed",
        "create",
        "failed",
        "job",
        "job_attributes",
        "jobs_completed",
        "process",
        "running",
        "staged",
        "started",
        "type",
        "type_name",
    )

    def __init__(self, type_name: str, chain_type_name: str) -> None:
        self.type_name = type_name
        self.chain_type_name = chain_type_name
        self.started = 0
        """Attempts started (also the messages consumed)."""
        self.attempts_completed = 0
        self.running = 0
        """Attempts started and not yet ended."""
        self.jobs_completed = [0, 0, 0, 0]
        """Jobs completed, indexed as :attr:`completed`."""
        self.type: Key = ((a.JOB_TYPE, type_name),)
        self.job: Key = ((a.JOB_TYPE, type_name), (a.CHAIN_TYPE, chain_type_name))
        self.job_attributes: dict[str, AttributeValue] = dict(self.job)

        def messaging(operation: str, kind: str) -> Key:
            return (
                (a.MESSAGING_SYSTEM, a.SYSTEM),
                (a.DESTINATION, type_name),
                (a.OPERATION_NAME, operation),
                (a.OPERATION_TYPE, kind),
            )

        self.create = messaging("create", "send")
        self.claim = messaging("claim", "receive")
        self.process: dict[str, AttributeValue] = dict(messaging("process", "process"))
        self.atomic = {**self.process, a.MODE: "atomic"}
        self.staged = {**self.process, a.MODE: "staged"}
        self.completed: tuple[Key, ...] = tuple(
            (*self.job, (a.CONTINUED, continued), (a.WORKERLESS, workerless))
            for continued in (False, True)
            for workerless in (False, True)
        )
        """Indexed by ``continued * 2 + workerless``."""
        self.failed: dict[str, dict[str, AttributeValue]] = {}
        """Error type -> the attributes of a failed attempt's duration (up to
        ``_MAX_ERROR_TYPES``, made once)."""


class _Closed:
    """The attribute set of chains of one type closed with one outcome, and how many were."""

    __slots__ = ("attributes", "count", "key")

    def __init__(self, chain_type_name: str, outcome: str) -> None:
        self.key: Key = ((a.CHAIN_TYPE, chain_type_name), (a.CHAIN_OUTCOME, outcome))
        self.attributes: dict[str, AttributeValue] = dict(self.key)
        self.count = 0
