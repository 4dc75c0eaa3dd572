"""The worker: claims jobs, runs handlers, keeps leases, retries, reaps, shuts down gracefully.

One asyncio worker per process; any number of processes. The worker

* claims up to as many ready jobs as it has free slots in one state operation (the claim writes the
  lease and counts the attempt in a committed step, so even a handler that kills the process is
  counted and backs off);
* runs each attempt in its own task (see :mod:`queuert.attempt` for atomic, staged and auto modes);
* renews the leases of all its running jobs in one state operation per interval; a lost lease (reaped,
  completed elsewhere, deleted, cancelled) cancels the handler and its completion is refused;
* retries failures with exponential backoff and jitter (``RescheduleJob`` for explicit times), and
  closes the chain as *failed* once an opt-in ``max_attempts`` is reached;
* reaps expired leases of its job types in batches, so jobs of dead workers come back;
* sleeps until a notification (with wake hints), the next due job, or the poll interval (with jitter);
* recovers from state errors with a backoff that resets after the next success;
* on ``close()`` stops claiming, tells handlers (``signal.reason == "shutdown"``), waits up to
  ``shutdown_timeout``, then cancels what is left and returns its jobs to ready; every task it started
  has ended when ``close()`` returns. A handler that ignores its cancellation is abandoned after a
  cleanup grace (``min(shutdown_timeout + 1 s, 10 s)``), with a warning: its job is not released but
  left to its lease, so no other worker runs it while it may still be running, and ``close()``
  still returns.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import re
import signal as signals
import sys
import traceback
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, Protocol, TypeVar, cast

from queuert._core import Core
from queuert._declared import Handled
from queuert._finishing import announced_by, closing_notifications
from queuert._mapping import job_info
from queuert._tasks import cancel_until_done, drain
from queuert.attempt import (
    LOST_REASONS,
    Attempt,
    CancelReason,
    FirstSuspension,
    OwnershipLostError,
)
from queuert.backoff import Backoff, Lease
from queuert.client import Client
from queuert.duration import Duration, to_timedelta
from queuert.errors import (
    AttemptTimeoutError,
    BlockerChainFailedError,
    JobNotCompletedError,
    RescheduleJob,
    StoredValueError,
    UsageError,
)
from queuert.hooks import TransactionHooks
from queuert.isolation import IsolatedJob, IsolationLimits, ProcessPool
from queuert.job_types import AnyJobType, JobType
from queuert.json import JsonValue
from queuert.limits import ConcurrencyLimit
from queuert.models import Chain
from queuert.observability import (
    AttemptCompleted,
    AttemptFailed,
    AttemptStarted,
    JobInfo,
    JobReaped,
    LeaseLost,
    LeasesRenewed,
    NotifyAdapterError,
    StateAdapterError,
    WorkerError,
    WorkerStarted,
    WorkerStopped,
    WorkerStopping,
)
from queuert.payload import storable_text
from queuert.periodic import Periodic, PeriodicStarter
from queuert.retention import Retention, RetentionResult, RunRetention, run_retention
from queuert.schedule import Schedule
from queuert.state import CompleteResult, Completion, StoredJob
from queuert.state_publishing import SupportsCompletePublishing
from queuert.storage_maintenance import (
    RunStorageMaintenance,
    StorageMaintenanceResult,
    run_storage_maintenance,
    storage_maintenance_periodic,
)

__all__ = ["AttemptMiddleware", "Handler", "HandlerConfig", "Worker"]

logger = logging.getLogger("queuert.worker")

TxT = TypeVar("TxT")
J = TypeVar("J")
O = TypeVar("O")  # noqa: E741
C = TypeVar("C")

Handler = Callable[[Attempt[J]], Awaitable[object]]
"""A handler for jobs of type ``J``: returns the output or the next job (or calls ``complete``)."""

MAX_ERROR_LENGTH = 10_000
_PREFETCH_MAX_HANDLER_TIME = 0.05
_CLAIM_GATHER_TURNS = 3
_LIMIT_RECHECK = 0.5
"""Seconds before a worker looks again at ready jobs that a concurrency limit held back (a place
freed by another worker wakes nobody; one freed by this worker's own jobs wakes it at once)."""
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


class AttemptMiddleware(Protocol):
    """Wraps every attempt (onion order: the first middleware is the outermost).

    ``async def middleware(attempt, call_next): ...; await call_next()``. Use it for logging, context
    (put values in ``attempt.context``), metrics or tracing. An exception it raises fails the attempt.
    """

    def __call__(
        self, attempt: Attempt[Any], call_next: Callable[[], Awaitable[None]]
    ) -> Awaitable[None]: ...


@dataclass(frozen=True)
class HandlerConfig:
    job_type: AnyJobType
    handler: Callable[[Attempt[Any]], Awaitable[object]]
    lease: Lease
    backoff: Backoff
    max_attempts: int | None
    timeout: float | None = None
    """Seconds an attempt may run before its handler is cancelled (``None``: no limit)."""
    declares_blockers: bool = False
    """The type declares blockers: an attempt reads their chains before its handler runs."""


def _forget_abandoned(
    abandoned: set[asyncio.Future[Any]],
) -> Callable[[asyncio.Future[Any]], None]:
    """Done callback of an abandoned handler: drop it, and take its outcome (nobody awaits it, so
    asyncio would otherwise log "exception was never retrieved")."""

    def done(handler: asyncio.Future[Any]) -> None:
        abandoned.discard(handler)
        if not handler.cancelled():
            handler.exception()

    return done


def serialize_error(exc: BaseException) -> str:
    """``Type: message`` plus a traceback summary, capped at 10,000 characters."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=8))
    head = error_head(exc)
    text = head + "\n" + text if not text.startswith(head) else text
    if len(text) > MAX_ERROR_LENGTH:
        text = text[: MAX_ERROR_LENGTH - 20] + "\n...[truncated]"
    return storable_text(text)


def error_head(exc: BaseException) -> str:
    """``Type: message``, storable, even when the exception's ``__str__`` raises."""
    try:
        message = str(exc)
    except Exception:
        message = "<str() of the exception raised>"
    return storable_text(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


class _Completer:
    """Group commit: plain-output completions of attempts that finish while a batch is being
    written are written together in the next batch, in one state operation (``complete_jobs``,
    guarded by this worker's lease)."""

    def __init__(self, worker: Worker[Any]) -> None:
        self._worker = worker
        self._core = worker._core
        state = worker._core.state
        self._publishing_state: SupportsCompletePublishing | None = (
            state if isinstance(state, SupportsCompletePublishing) else None
        )
        """The state adapter when it can also publish what a batch announces (asked once)."""
        self._pending: list[tuple[Completion, asyncio.Future[CompleteResult | None]]] = []
        self._task: asyncio.Task[None] | None = None

    def submit(
        self, job: StoredJob, output: JsonValue, output_text: str | None
    ) -> asyncio.Future[CompleteResult | None]:
        future: asyncio.Future[CompleteResult | None] = asyncio.get_running_loop().create_future()
        completion = Completion(job.id, output=output, output_text=output_text, claimed=job)
        self._pending.append((completion, future))
        if self._task is None or self._task.done():
            self._task = self._worker._spawn(self._run(), "queuert-completer")
        return future

    async def _run(self) -> None:
        worker = self._worker
        core = self._core
        # With a notify adapter that publishes inside the store's transactions, a batch's
        # notifications go with its write: the state adapter publishes them (in one statement
        # where it can) when it supports it, else the batch is written in a transaction of its
        # own that carries them. Otherwise the batch is one statement, its notifications
        # published after it.
        in_transaction = await core.publishing.in_transaction()
        publishing_state = self._publishing_state if in_transaction is not None else None
        while self._pending:
            batch, self._pending = self._pending, []
            completions = [completion for completion, _ in batch]
            try:
                if publishing_state is not None and in_transaction is not None:
                    hooks = TransactionHooks()
                    results = await publishing_state.complete_jobs_publishing(
                        completions,
                        closing_notifications(completions),
                        announced_by,
                        in_transaction,
                        worker_id=worker.id,
                        owner=worker.id,
                    )
                    self._after_close(results, hooks, published=True)
                    await hooks.flush()
                elif in_transaction is not None:
                    async with core.transactions.transaction() as bound:
                        results = await core.state.complete_jobs(
                            completions, worker_id=worker.id, owner=worker.id, tx=bound.tx
                        )
                        self._after_close(results, bound.hooks)
                else:
                    hooks = TransactionHooks()
                    results = await core.state.complete_jobs(
                        completions, worker_id=worker.id, owner=worker.id
                    )
                    self._after_close(results, hooks)
                    await hooks.flush()
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    def _after_close(
        self,
        results: Sequence[CompleteResult | None],
        hooks: TransactionHooks,
        *,
        published: bool = False,
    ) -> None:
        self._core.finishing.after_close_all(
            results, worker_id=self._worker.id, hooks=hooks, published=published
        )


class _Wake:
    """The main loop's wake-up: set by a freed slot, a notification or the stop; the loop sleeps
    on it for at most a delay. Like ``asyncio.Event`` under ``asyncio.wait_for``, but one future
    and one timer per sleep (``wait_for`` wraps the wait in a task of its own before Python 3.12).
    """

    __slots__ = ("_is_set", "_waiter")

    def __init__(self) -> None:
        self._is_set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._is_set = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._is_set = False

    def is_set(self) -> bool:
        return self._is_set

    async def wait(self, delay: float) -> None:
        """Return once set (at once if it is), or after ``delay`` seconds."""
        if self._is_set:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(delay, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            if self._waiter is waiter:
                self._waiter = None


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _AttemptHost:
    """The worker as its attempts see it: a :class:`~queuert.attempt.AttemptHost`."""

    def __init__(self, worker: Worker[Any]) -> None:
        self._worker = worker
        self.worker_id = worker.id
        self.client: Client[Any] = worker.client
        self.core: Core[Any] = worker._core

    def complete_later(
        self, job: StoredJob, output: JsonValue, output_text: str | None
    ) -> asyncio.Future[CompleteResult | None]:
        return self._worker._completer.submit(job, output, output_text)

    async def check_owned(self, job_id: str, *, tx: Any = None) -> None:
        await self._worker._check_owned(job_id, tx=tx)

    def hold(self, job_id: str) -> None:
        self._worker._held.add(job_id)

    def unhold(self, job_id: str) -> None:
        self._worker._held.discard(job_id)

    def suspended(self, job_id: str) -> None:
        self._worker._on_attempt_suspended(job_id)


class _Running:
    """Book-keeping of one in-flight attempt.

    The handler runs in the attempt's own task (no task of its own): while it runs
    (``in_handler``), cancelling the attempt cancels that task, and the attempt's book-keeping,
    which follows in the same task, takes the cancellation back (``Task.uncancel``)."""

    __slots__ = (
        "abandoned",
        "attempt",
        "cancel_reason",
        "cancels",
        "config",
        "holds_slot",
        "in_handler",
        "job",
        "task",
        "watch",
    )

    def __init__(self, job: StoredJob, config: HandlerConfig) -> None:
        self.job = job
        self.config = config
        self.attempt: Attempt[Any] | None = None
        self.task: asyncio.Task[Any] | None = None
        self.in_handler = False
        """The task is running the handler (and the completion it writes): cancellable."""
        self.cancels = 0
        """Cancellations of the task requested while it ran the handler."""
        self.abandoned = False
        """Shutdown gave up on a handler that ignores its cancellation: once it ends, nothing more."""
        self.cancel_reason: CancelReason | None = None
        self.holds_slot = True
        self.watch: asyncio.Task[Callable[[], Awaitable[None]] | None] | None = None

    def cancel(self, reason: CancelReason) -> None:
        if self.attempt is not None:
            self.attempt.signal._set(reason)
        if self.cancel_reason is None or reason in LOST_REASONS:
            self.cancel_reason = reason
        if self.in_handler and self.task is not None and self.task.cancel():
            self.cancels += 1

    def handler_ended(self) -> None:
        """The handler returned or raised: later cancellations no longer reach the task, and those
        that did are taken back (Python 3.11+ counts them; a task whose count stays up would see
        the next ``asyncio.timeout`` it enters misread)."""
        self.in_handler = False
        task = self.task
        uncancel = getattr(task, "uncancel", None)
        if uncancel is not None:
            for _ in range(self.cancels):
                uncancel()
        self.cancels = 0


class Worker(Generic[TxT]):
    """Processes jobs of the types it has handlers for.

    ``Worker(client, name="mailer", concurrency=10, handlers={SendEmail: send_email})`` or register
    handlers with ``@worker.handler(SendEmail)``. Then ``async with worker: ...``, ``await
    worker.run()`` (until SIGINT/SIGTERM or ``close()``), or ``start()`` / ``close()``.
    """

    def __init__(
        self,
        client: Client[TxT],
        *,
        name: str | None = None,
        concurrency: int = 1,
        handlers: Mapping[AnyJobType, Callable[[Attempt[Any]], Awaitable[object]]] | None = None,
        middleware: Sequence[AttemptMiddleware] = (),
        poll_interval: Duration = timedelta(seconds=60),
        lease: Lease | None = None,
        backoff: Backoff | None = None,
        recovery_backoff: Backoff | None = None,
        shutdown_timeout: Duration = timedelta(seconds=30),
        reap_interval: Duration | None = None,
        reap_batch: int = 100,
        prefetch: int | None = None,
        periodic: Sequence[Periodic[Any]] = (),
        retention: Retention | None = None,
    ) -> None:
        if name is not None and not _NAME_RE.match(name):
            raise UsageError("worker name must be 1-100 characters of A-Z a-z 0-9 . _ -")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise UsageError("concurrency must be a positive int")
        self.client = client
        self._core: Core[TxT] = client._core
        """The client's internals (publishing, bound transactions, mapping, finishing)."""
        if retention is not None:
            periodic = [*periodic, retention.periodic()]
        maintenance = storage_maintenance_periodic(client._core.state)
        if maintenance is not None:
            periodic = [*periodic, maintenance]
        self._periodic = PeriodicStarter(client, periodic) if periodic else None
        """Starts the periodic chains at their ticks while the worker runs."""
        self.name = name
        self.id = f"{name}-{uuid.uuid4().hex[:12]}" if name else uuid.uuid4().hex
        self.concurrency = concurrency
        self.poll_interval = to_timedelta(poll_interval, name="poll_interval", positive=True)
        """The longest the worker sleeps without a notification (±5 % jitter)."""
        self._poll_seconds = self.poll_interval.total_seconds()
        self.default_lease = lease or Lease()
        self.default_backoff = backoff or Backoff()
        self.recovery_backoff = recovery_backoff or Backoff()
        self.shutdown_timeout = to_timedelta(shutdown_timeout, name="shutdown_timeout")
        """How long in-flight handlers may take to finish on ``close()``."""
        self._shutdown_seconds = self.shutdown_timeout.total_seconds()
        self._cleanup_seconds = min(self._shutdown_seconds + 1.0, 10.0)
        """How long cancelled handlers get to roll back before they are abandoned."""
        self.reap_interval = (
            None
            if reap_interval is None
            else to_timedelta(reap_interval, name="reap_interval", positive=True)
        )
        """How often the worker reaps expired leases; ``None``: half the shortest lease, at most
        the poll interval."""
        self.reap_batch = reap_batch
        self.middleware = tuple(middleware)
        if prefetch is not None and (not isinstance(prefetch, int) or prefetch < 0):
            raise UsageError("prefetch must be None (adaptive) or an int >= 0")
        self.prefetch = prefetch
        self._buffer: collections.deque[StoredJob] = collections.deque()
        """Claimed jobs waiting for a slot (their leases are renewed like running jobs')."""
        self._handler_time: float | None = None
        self._configs: dict[str, HandlerConfig] = {}
        self._pools: list[ProcessPool] = []
        self._running: dict[str, _Running] = {}
        self._busy = 0
        """Slots taken by running handlers (a settled handler frees its slot before its write)."""
        self._held: set[str] = set()
        """Jobs with an open transaction of their attempt, which holds (or will hold) their row
        locked: not renewed meanwhile."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._abandoned: set[asyncio.Future[Any]] = set()
        """Attempts whose handler ignored its cancellation at shutdown (referenced, never awaited)."""
        self._wake = _Wake()
        self._stopping = False
        self._started = False
        self._closed = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None
        self._main: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], Awaitable[None]] | None = None
        self._stop_requested: asyncio.Event | None = None
        self._consuming: set[str] = set()
        self._claim_leases: dict[str, timedelta] = {}
        self._claim_limits: dict[str, ConcurrencyLimit] = {}
        self._next_reap = 0.0
        self._held_back = False
        """The last claim left ready jobs to their concurrency limits."""
        self._completer = _Completer(self)
        self._host = _AttemptHost(self)
        self.processed = 0
        """Attempts finished (any outcome) since start; handy for tests and benchmarks."""
        if retention is not None:

            async def expire(attempt: Attempt[RunRetention]) -> RetentionResult:
                return await run_retention(client, attempt)

            self.register(RunRetention, expire)
        if maintenance is not None:

            async def maintain(
                attempt: Attempt[RunStorageMaintenance],
            ) -> StorageMaintenanceResult:
                return await run_storage_maintenance(client, attempt)

            self.register(RunStorageMaintenance, maintain)
        for job_type, fn in (handlers or {}).items():
            self.register(job_type, fn)

    # -- configuration --------------------------------------------------------------------------

    def register(
        self,
        job_type: type[Handled[O, C, J]],
        handler: Callable[[Attempt[J]], Awaitable[O | C | None]],
        *,
        lease: Lease | None = None,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        timeout: Duration | None = None,
    ) -> None:
        """Run ``handler`` for jobs of ``job_type``. The type (and every type reachable from it)
        becomes known to the client, if it was not already. The handler returns the job's output
        or the next job (mypy checks both against the type's declaration), or calls
        ``attempt.complete(...)`` and returns ``None``.

        ``timeout`` limits each attempt: when it passes, ``attempt.signal.reason`` becomes
        ``"timeout"`` and the handler is cancelled; the attempt fails with
        :class:`~queuert.errors.AttemptTimeoutError` and is retried with backoff like any failure."""
        if self._started:
            raise UsageError("register handlers before the worker starts")
        jt = cast(AnyJobType, job_type)
        if not (isinstance(jt, type) and issubclass(jt, JobType)) or not jt.type_name:
            raise UsageError(f"register takes a job type class, not {job_type!r}")
        if jt.type_name in self._configs:
            raise UsageError(f"a handler for {jt.type_name!r} is already registered")
        if max_attempts is not None and (not isinstance(max_attempts, int) or max_attempts < 1):
            raise UsageError("max_attempts must be a positive int")
        if jt.concurrency_limit.is_set and not self._core.state.capabilities.concurrency_limits:
            raise UsageError(
                f"{jt.type_name!r} has a concurrency limit, which this state adapter cannot enforce"
            )
        self._core.registry.add([jt])
        self._configs[jt.type_name] = HandlerConfig(
            job_type=jt,
            handler=cast("Callable[[Attempt[Any]], Awaitable[object]]", handler),
            lease=lease or self.default_lease,
            backoff=backoff or self.default_backoff,
            max_attempts=max_attempts if max_attempts is not None else jt.max_attempts,
            timeout=None
            if timeout is None
            else to_timedelta(timeout, name="timeout", positive=True).total_seconds(),
            declares_blockers=jt.spec().blockers.declared,
        )

    def handler(
        self,
        job_type: type[Handled[O, C, J]],
        *,
        lease: Lease | None = None,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        timeout: Duration | None = None,
    ) -> Callable[
        [Callable[[Attempt[J]], Awaitable[O | C | None]]],
        Callable[[Attempt[J]], Awaitable[O | C | None]],
    ]:
        """Decorator form of :meth:`register`."""

        def decorate(
            fn: Callable[[Attempt[J]], Awaitable[O | C | None]],
        ) -> Callable[[Attempt[J]], Awaitable[O | C | None]]:
            self.register(
                job_type,
                fn,
                lease=lease,
                backoff=backoff,
                max_attempts=max_attempts,
                timeout=timeout,
            )
            return fn

        return decorate

    def isolated(
        self,
        job_type: type[Handled[O, C, J]],
        *,
        hard_timeout: Duration,
        memory_limit: int | None = None,
        cpu_limit: Duration | None = None,
        processes: int | None = None,
        lease: Lease | None = None,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
    ) -> Callable[
        [Callable[[IsolatedJob[J]], O | C | Awaitable[O | C]]],
        Callable[[IsolatedJob[J]], O | C | Awaitable[O | C]],
    ]:
        """Run jobs of ``job_type`` with a function of an :class:`~queuert.isolation.IsolatedJob`
        in processes of their own (a pool of at most ``processes``, default the worker's
        concurrency capped at the CPU count), in staged mode.

        A handler that runs longer than ``hard_timeout``, needs more address space than
        ``memory_limit`` bytes or more CPU time than ``cpu_limit``, or whose process dies, fails
        its attempt with :class:`~queuert.isolation.HardTimeoutError`,
        :class:`~queuert.isolation.MemoryLimitError`, :class:`~queuert.isolation.CpuLimitError` or
        :class:`~queuert.isolation.HandlerCrashedError`, and the attempt is retried with backoff
        like any failure; the process is replaced. The function must be defined at module level
        (its process imports it by name); it returns the job's output or the next job (without
        blockers or deduplication: those need the worker's transaction). POSIX only."""
        if os.name != "posix":
            raise UsageError("isolated handlers need a POSIX system (resource limits, signals)")
        timeout = to_timedelta(hard_timeout, name="hard_timeout", positive=True).total_seconds()
        if memory_limit is not None and (
            not isinstance(memory_limit, int) or isinstance(memory_limit, bool) or memory_limit < 1
        ):
            raise UsageError("memory_limit must be a positive number of bytes")
        cpu = (
            None
            if cpu_limit is None
            else to_timedelta(cpu_limit, name="cpu_limit", positive=True).total_seconds()
        )
        if processes is not None and (
            not isinstance(processes, int) or isinstance(processes, bool) or processes < 1
        ):
            raise UsageError("processes must be a positive int")
        size = processes or max(1, min(self.concurrency, os.cpu_count() or 1))
        jt = cast(AnyJobType, job_type)
        if isinstance(jt, type) and issubclass(jt, JobType) and jt.spec().blockers.declared:
            raise UsageError(
                f"{jt.__name__} declares blockers: an isolated handler cannot read blocker outputs"
            )
        codec = self._core.codec

        def decorate(
            fn: Callable[[IsolatedJob[J]], O | C | Awaitable[O | C]],
        ) -> Callable[[IsolatedJob[J]], O | C | Awaitable[O | C]]:
            pool = ProcessPool(
                type_name=jt.type_name,
                function=fn,
                job_type=jt,
                codec=codec,
                lookup=self._core.registry.require,
                limits=IsolationLimits(timeout, memory_limit, cpu),
                size=size,
            )
            spec = jt.spec()

            async def run_isolated(attempt: Attempt[Any]) -> object:
                await attempt.prepare("staged")
                stored = attempt.job
                result: object = await pool.run(
                    input_json=codec.encode(spec.input_type, attempt.input),
                    id=stored.id,
                    chain_id=stored.chain_id,
                    number=attempt.number,
                )
                return result

            self.register(
                job_type,
                cast("Callable[[Attempt[J]], Awaitable[O | C | None]]", run_isolated),
                lease=lease,
                backoff=backoff,
                max_attempts=max_attempts,
            )
            self._pools.append(pool)
            return fn

        return decorate

    @property
    def type_names(self) -> list[str]:
        return sorted(self._configs)

    @property
    def in_flight(self) -> int:
        """Attempts started and not yet settled (their completion may still be being written)."""
        return len(self._running)

    def _free_slots(self) -> int:
        return self.concurrency - self._busy

    def _release_slot(self, running: _Running) -> None:
        """A handler finished: its slot takes new work while its completion is being written."""
        if running.holds_slot:
            running.holds_slot = False
            self._busy -= 1
            self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            raise UsageError("the worker was already started")
        if not self._configs:
            raise UsageError("the worker has no handlers")
        self._started = True
        # what every claim asks for (the handlers are fixed once the worker has started)
        self._claim_leases = {name: cfg.lease.duration for name, cfg in self._configs.items()}
        self._claim_limits = {
            name: cfg.job_type.concurrency_limit
            for name, cfg in self._configs.items()
            if cfg.job_type.concurrency_limit.is_set
        }
        try:
            self._unsubscribe = await self._core.notify.listen_job_scheduled(
                self.type_names, self._on_scheduled
            )
        except Exception as exc:
            self._core.emit(NotifyAdapterError(operation="listen_job_scheduled", error=repr(exc)))
        self._main = asyncio.create_task(self._main_loop(), name=f"queuert-worker-{self.id}")
        self._renewer = asyncio.create_task(self._renew_loop(), name=f"queuert-leases-{self.id}")
        if self._periodic is not None:
            self._periodic.start()
        self._core.emit(WorkerStarted(self.id, tuple(self.type_names), self.concurrency))

    async def close(self) -> None:
        """Stop gracefully within ``shutdown_timeout`` plus the cleanup grace (``shutdown_timeout``
        + 1 s, at most 10 s); idempotent."""
        if not self._started:
            return
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._closing)

    async def run(self, *, handle_signals: bool = True) -> None:
        """Start, then run until SIGINT/SIGTERM (if ``handle_signals``) or :meth:`stop`; then close."""
        self._stop_requested = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signals.Signals] = []
        if handle_signals:
            for sig in (signals.SIGINT, signals.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self.stop)
                    installed.append(sig)
        try:
            await self.start()
            await self._stop_requested.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.close()

    def stop(self) -> None:
        """Ask :meth:`run` to return (it then closes the worker)."""
        if self._stop_requested is not None:
            self._stop_requested.set()
        elif self._started and self._closing is None:
            self._closing = asyncio.ensure_future(self._shutdown())

    async def __aenter__(self) -> Worker[TxT]:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _shutdown(self) -> None:
        self._stopping = True
        self._wake.set()
        self._core.emit(WorkerStopping(self.id, len(self._running)))
        if self._periodic is not None:
            await self._periodic.close()
        if self._main is not None:
            await _finish(self._main, timeout=self._shutdown_seconds + 5)
        while self._buffer:
            job = self._buffer.popleft()
            self._spawn(self._release(job), f"queuert-release-{job.id}")
        for running in list(self._running.values()):
            if running.attempt is not None:
                running.attempt.signal._set("shutdown")
        attempts = [t for t in self._tasks if t.get_name().startswith("queuert-attempt")]
        if attempts:
            _, pending = await asyncio.wait(attempts, timeout=self._shutdown_seconds)
            if pending:
                for running in list(self._running.values()):
                    running.cancel("shutdown")
                _, still = await asyncio.wait(pending, timeout=self._cleanup_seconds)
                watches = []
                for running in list(self._running.values()):
                    if running.in_handler and running.task in still:
                        # its handler ignores its cancellation: left running, not awaited
                        assert running.task is not None
                        still.discard(running.task)
                        self._abandon(running)
                        if running.watch is not None:
                            watches.append(running.watch)
                            running.watch = None
                for task in still:  # stuck in book-keeping (a store that does not answer)
                    task.cancel()
                await asyncio.gather(*still, return_exceptions=True)
                for watch in watches:
                    await self._unwatch(watch)
        for pool in self._pools:
            await pool.close()
        if self._renewer is not None:
            await _finish(self._renewer, timeout=0)
        if self._unsubscribe is not None:
            try:
                await self._unsubscribe()
            except Exception as exc:
                self._core.emit(NotifyAdapterError(operation="unsubscribe", error=repr(exc)))
        await drain(self._tasks, cancel=True)
        self._core.emit(WorkerStopped(self.id))
        self._closed.set()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- main loop ------------------------------------------------------------------------------

    async def _main_loop(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            try:
                again = await self._iteration()
                failures = 0
                if again:
                    continue
                await self._wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = self.recovery_backoff.delay_seconds(failures)
                self._core.emit(WorkerError(self.id, repr(exc), delay))
                await self._sleep(delay)

    async def _iteration(self) -> bool:
        """Fill free slots (from the prefetch buffer first, then with one claim) and reap when due.
        True if the loop should go again at once."""
        loop = asyncio.get_running_loop()
        if 0 < self._busy < self.concurrency:
            # Handlers that are about to finish free their slots within a few loop turns: let them,
            # so one claim fills several slots instead of one claim per freed slot.
            for _ in range(_CLAIM_GATHER_TURNS):
                await asyncio.sleep(0)
        self._start_buffered()
        again = False
        prefetch = self._prefetch_target()
        wanted = self.concurrency + prefetch - self._busy - len(self._buffer)
        # Claim when a slot is free, or (all slots busy) to refill a prefetch buffer that ran low.
        if wanted > 0 and (self._free_slots() > 0 or len(self._buffer) <= prefetch // 2):
            leases, limits = self._claim_leases, self._claim_limits
            if limits:
                claim = await self._core.state.claim_jobs(
                    leases=leases, limit=wanted, worker_id=self.id, limits=limits
                )
            else:
                claim = await self._core.state.claim_jobs(
                    leases=leases, limit=wanted, worker_id=self.id
                )
            self._held_back = bool(limits) and not claim.has_more and len(claim.jobs) < wanted
            for job in claim.jobs:
                if self._stopping:
                    self._spawn(self._release(job), f"queuert-release-{job.id}")
                else:
                    self._buffer.append(job)
            self._start_buffered()
            again = claim.has_more and self._free_slots() > 0
        if loop.time() >= self._next_reap:
            self._next_reap = loop.time() + self._reap_every()
            reaped = await self._core.state.reap_expired_leases(
                self.type_names,
                limit=self.reap_batch,
                exclude_job_ids=[*self._running, *(job.id for job in self._buffer)],
            )
            if reaped:
                self._after_reap(reaped)
                self._next_reap = 0.0 if len(reaped) >= self.reap_batch else self._next_reap
                again = True
        return again and not self._stopping

    def _start_buffered(self) -> None:
        while self._buffer and self._free_slots() > 0 and not self._stopping:
            self._start_attempt(self._buffer.popleft())

    def _prefetch_target(self) -> int:
        """How many claimed jobs may wait for a slot. ``prefetch=None`` (the default) prefetches up
        to twice ``concurrency`` jobs only while handlers are short (moving average under 50 ms):
        claims then carry more jobs per round trip (``tools/bench``: about +25% jobs/s at concurrency
        10 on PostgreSQL against a buffer of ``concurrency``), and a buffered job waits at most a few
        handler runs, while a worker with slow handlers never sits on work another could start."""
        if self.prefetch is not None:
            return self.prefetch
        if self._handler_time is None or self._handler_time > _PREFETCH_MAX_HANDLER_TIME:
            return 0
        return 2 * self.concurrency

    def _note_handler_time(self, seconds: float) -> None:
        if self._handler_time is None:
            self._handler_time = seconds
        else:
            self._handler_time += (seconds - self._handler_time) * 0.1

    def _reap_every(self) -> float:
        if self.reap_interval is not None:
            return self.reap_interval.total_seconds()
        shortest = min(cfg.lease.duration for cfg in self._configs.values()).total_seconds()
        return max(min(shortest / 2, self._poll_seconds), 0.05)

    def _after_reap(self, reaped: list[StoredJob]) -> None:
        by_type: dict[str, int] = {}
        for job in reaped:
            by_type[job.type_name] = by_type.get(job.type_name, 0) + 1
            self._core.emit(JobReaped(job_info(job), job.leased_by, self.id))
        self._core.publish_later(by_type, set(), set(), {j.id for j in reaped})

    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._poll_seconds
        if self._free_slots() > 0:
            due = await self._core.state.next_due(self.type_names)
            if due is not None:
                seconds = max(due.total_seconds(), 0.0)
                if seconds == 0.0 and self._held_back:
                    # ready jobs the last claim left to their concurrency limits
                    seconds = _LIMIT_RECHECK
                delay = min(delay, seconds)
        delay = min(delay, max(self._next_reap - loop.time(), 0.0))
        if delay > 0:
            delay *= random.uniform(0.95, 1.05)
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        """Sleep up to ``delay`` seconds or until woken (notification, freed slot, stop)."""
        if self._stopping:
            return
        if self._wake.is_set():
            # Woken meanwhile (slots freed during a claim): one loop turn first, so that the
            # attempts this iteration started run their first steps and free their slots too, and
            # the next claim fills them all at once instead of refilling the buffer by halves.
            await asyncio.sleep(0)
            return
        await self._wake.wait(delay)

    def _on_scheduled(self, type_name: str) -> None:
        if self._stopping or self._free_slots() <= 0 or type_name in self._consuming:
            return
        self._consuming.add(type_name)
        self._spawn(self._consume_hint(type_name), f"queuert-hint-{type_name}")

    async def _consume_hint(self, type_name: str) -> None:
        try:
            granted = await self._core.notify.consume_wake_hint(type_name)
        except Exception as exc:
            self._core.emit(NotifyAdapterError(operation="consume_wake_hint", error=repr(exc)))
            granted = True
        finally:
            self._consuming.discard(type_name)
        if granted:
            self._wake.set()

    # -- leases ---------------------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        interval = min(cfg.lease.renew_every for cfg in self._configs.values()).total_seconds()
        while True:
            await asyncio.sleep(interval)
            leases = {
                job_id: r.config.lease.duration
                for job_id, r in self._running.items()
                if job_id not in self._held
            }
            types = {job_id: r.job.type_name for job_id, r in self._running.items()}
            for job in self._buffer:
                leases[job.id] = self._configs[job.type_name].lease.duration
                types[job.id] = job.type_name
            if not leases:
                continue
            try:
                renewal = await self._core.state.renew_leases(leases, worker_id=self.id)
            except Exception as exc:
                self._core.emit(StateAdapterError(operation="renew_leases", error=repr(exc)))
                continue
            if renewal.renewed:
                self._core.emit(
                    LeasesRenewed(self.id, tuple(types[j] for j in renewal.renewed if j in types))
                )
            lost = set(renewal.lost)
            if lost and self._buffer:
                self._buffer = collections.deque(j for j in self._buffer if j.id not in lost)
            for job_id in renewal.lost:
                if job_id in self._running and job_id not in self._held:
                    self._spawn(self._classify_loss(job_id), f"queuert-loss-{job_id}")

    async def _classify_loss(self, job_id: str) -> None:
        try:
            await self._check_owned(job_id)
        except OwnershipLostError as lost:
            self._lose(job_id, lost.reason)
        except Exception as exc:
            self._core.emit(StateAdapterError(operation="get_job", error=repr(exc)))

    async def _check_owned(self, job_id: str, *, tx: Any = None) -> None:
        """Raise :class:`OwnershipLostError` unless the job is open and leased by this worker.

        With ``tx``, the row is read with a lock held until that transaction ends.
        """
        stored = await self._core.state.get_job(job_id, lock=tx is not None, tx=tx)
        if stored is None:
            raise OwnershipLostError(job_id, "not_found")
        if stored.is_closed:
            reason: CancelReason = (
                "cancelled" if stored.outcome == "cancelled" else "already_completed"
            )
            raise OwnershipLostError(job_id, reason)
        if stored.leased_by != self.id:
            raise OwnershipLostError(job_id, "taken_by_another_worker", stored.leased_by)

    def _lose(self, job_id: str, reason: CancelReason) -> None:
        running = self._running.get(job_id)
        if running is None:
            return
        self._core.emit(LeaseLost(job_info(running.job), self.id, reason))
        running.cancel(reason)

    def _on_attempt_suspended(self, job_id: str) -> None:
        """The handler awaited something: from now on it may run long, so listen for the job's
        ownership-lost notification (an attempt that never suspends needs no subscription)."""
        running = self._running.get(job_id)
        if running is not None and running.watch is None:
            running.watch = self._spawn(self._watch(job_id), f"queuert-watch-{job_id}")

    async def _watch(self, job_id: str) -> Callable[[], Awaitable[None]] | None:
        try:
            return await self._core.notify.listen_job_ownership_lost(
                job_id, lambda: self._on_ownership_hint(job_id)
            )
        except Exception as exc:
            self._core.emit(
                NotifyAdapterError(operation="listen_job_ownership_lost", error=repr(exc))
            )
            return None

    async def _unwatch(self, watch: asyncio.Task[Callable[[], Awaitable[None]] | None]) -> None:
        try:
            unsubscribe = await watch
        except asyncio.CancelledError:
            if not watch.cancelled():
                raise
            return
        if unsubscribe is not None:
            try:
                await unsubscribe()
            except Exception as exc:
                self._core.emit(NotifyAdapterError(operation="unsubscribe", error=repr(exc)))

    def _on_ownership_hint(self, job_id: str) -> None:
        if job_id in self._running and job_id not in self._held:
            self._spawn(self._classify_loss(job_id), f"queuert-loss-{job_id}")

    # -- attempts -------------------------------------------------------------------------------

    def _start_attempt(self, job: StoredJob) -> None:
        config = self._configs.get(job.type_name)
        if config is None:  # cannot happen: we only claim our own types
            self._spawn(self._release(job), f"queuert-release-{job.id}")
            return
        running = _Running(job, config)
        self._running[job.id] = running
        self._busy += 1
        # Owned like every task of the worker, but with no done callback (one loop callback less
        # per attempt): _run_attempt takes its task out of the set as its last step. Python 3.12+
        # runs the attempt's first step at once, in this call (as the current task): a handler that
        # does not suspend reaches its completion without waiting for a loop turn.
        coro = self._run_attempt(running)
        name = f"queuert-attempt-{job.id}"
        loop = asyncio.get_running_loop()
        task: asyncio.Task[None]
        if loop.get_task_factory() is not None:
            # a task factory of the application's own makes every task, the attempts' too
            task = loop.create_task(coro, name=name)
        elif sys.version_info >= (3, 12):
            task = asyncio.Task(coro, loop=loop, name=name, eager_start=True)
        else:  # what create_task does without a factory, without its frame
            task = asyncio.Task(coro, loop=loop, name=name)
        running.task = task
        if not task.done():  # an eager first step may have run the whole attempt
            self._tasks.add(task)

    def _abandon(self, running: _Running) -> None:
        """Stop waiting for a handler that ignores its cancellation. Its job stays leased until the
        lease expires (no renewal), so no other worker runs it while it may still be running; when
        the handler ends, its attempt records nothing."""
        job, task = running.job, running.task
        assert task is not None
        running.abandoned = True
        self._running.pop(job.id, None)
        self._tasks.discard(task)
        self._abandoned.add(task)
        task.add_done_callback(_forget_abandoned(self._abandoned))
        logger.warning(
            "a handler ignored its cancellation; left running, its job is left to its lease",
            extra={"queuert_job_id": job.id, "queuert_job_type": job.type_name},
        )

    async def _run_attempt(self, running: _Running) -> None:
        """One attempt in its own task, from the job's public view to the bookkeeping after its
        completion. Without middleware and attempt scopes the handler runs right here: no
        coroutine of the worker's between the task and the handler."""
        job = running.job
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            client = self.client
            core = self._core
            config = running.config
            declares_blockers = config.declares_blockers
            try:
                blockers: tuple[Chain[Any], ...] = ()
                if declares_blockers:
                    blockers = tuple(await client.get_job_blockers(job.id))
                    failed = [b for b in blockers if b.outcome in ("failed", "cancelled")]
                    if failed and config.job_type.on_blocker_failure == "fail":
                        raise BlockerChainFailedError(failed[0].id, failed[0].outcome or "failed")
                public = core.to_job(job, strict=True)
                attempt: Attempt[Any] = Attempt(
                    host=self._host, stored=job, job=public, input=public.input, blockers=blockers
                )
            except Exception as exc:
                # a failed blocker or a stored value that cannot be read: retrying changes nothing
                final = isinstance(exc, (BlockerChainFailedError, StoredValueError))
                await self._record_failure(running, exc, started, final=final)
                return
            running.attempt = attempt
            if running.cancel_reason is not None:
                attempt.signal._set(running.cancel_reason)
            info: JobInfo | None = None  # what the attempt's events say about the job, built once
            if core.publishing.listens(AttemptStarted.level):
                now = datetime.now(timezone.utc)
                info = job_info(job)
                core.emit(
                    AttemptStarted(
                        info, self.id, max((now - job.scheduled_at).total_seconds(), 0.0)
                    )
                )
            scopes = core.publishing.scopes
            handle = (  # None: the handler alone, run below (no coroutine of _handle around it)
                None
                if scopes is None and not self.middleware
                else self._handle(running, attempt, config)
                if scopes is None
                else self._run_handler(running, attempt, config)
            )
            timer = (
                None
                if config.timeout is None
                else loop.call_later(config.timeout, running.cancel, "timeout")
            )
            # The handler runs in this task: one task per attempt. running.cancel() cancels this task
            # only while the handler runs; handler_ended() takes those cancellations back.
            running.in_handler = True
            try:
                if handle is not None:
                    await handle
                else:  # _handle without middleware, inline
                    try:
                        # the handler's time (prefetch); without blockers to read first, the
                        # attempt's start is the handler's within microseconds
                        handler_started = loop.time() if declares_blockers else started
                        attempt._returned = await FirstSuspension(
                            config.handler(attempt), attempt._on_first_suspension
                        )
                        self._handler_returned(running, attempt, handler_started)
                        await attempt._finish()
                    except BaseException as exc:
                        await attempt._close(exc)
                        raise
            except BaseException as exc:
                running.handler_ended()
                if running.abandoned:  # close() gave up on it long ago: nothing is ours to record
                    return
                reason = running.cancel_reason
                if isinstance(exc, OwnershipLostError):
                    self._lose(job.id, exc.reason)
                    return
                if reason in LOST_REASONS:
                    return
                if isinstance(exc, asyncio.CancelledError):
                    if reason == "timeout" and not self._stopping:
                        # the handler was cancelled by its timeout: a failed attempt
                        assert config.timeout is not None
                        timed_out = AttemptTimeoutError(job.type_name, config.timeout)
                        await self._record_failure(running, timed_out, started)
                        return
                    # cancelled for the shutdown, or by something of the handler's own: give the job
                    # back (ready again, attempt counted)
                    await self._release(job)
                    if reason is None:
                        raise
                    return
                if isinstance(exc, Exception):
                    # A handler that completed nothing must not run again: it would repeat its effects.
                    final = isinstance(exc, JobNotCompletedError)
                    await self._record_failure(running, exc, started, final=final)
                    return
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            running.handler_ended()
            if running.abandoned:
                return
            if core.publishing.listens(AttemptCompleted.level):
                core.emit(
                    AttemptCompleted(
                        job_info(job) if info is None else info,
                        self.id,
                        max(loop.time() - started, 0.0),
                        attempt.mode or "atomic",
                        continued_with=attempt.continued_with,
                    )
                )
        except Exception:
            logger.exception("attempt bookkeeping failed", extra={"queuert_job_id": job.id})
        finally:
            try:
                if not running.abandoned:
                    self._running.pop(job.id, None)
                    self._release_slot(running)  # if not freed (and the loop woken) on return
                    self.processed += 1
                if running.watch is not None:
                    await self._unwatch(running.watch)
            finally:
                # nothing is awaited after this: the task ends in this step
                # (None: the task's eager first step ran the whole attempt; it was never added)
                self._tasks.discard(running.task)

    async def _run_handler(
        self, running: _Running, attempt: Attempt[Any], config: HandlerConfig
    ) -> None:
        """Runs in its own task so the worker can cancel it; commits the completing transaction
        (inside the observability adapter's attempt scope, if it gives one)."""
        scopes = self._core.publishing.scopes
        scope = None
        if scopes is not None:
            try:
                scope = scopes.attempt_scope(job_info(running.job))
            except Exception:
                logger.exception("observability adapter failed to give an attempt scope")
        if scope is None:
            await self._handle(running, attempt, config)
            return
        with scope:
            await self._handle(running, attempt, config)

    async def _handle(
        self, running: _Running, attempt: Attempt[Any], config: HandlerConfig
    ) -> None:

        def run_handler() -> FirstSuspension[Any]:
            return FirstSuspension(config.handler(attempt), attempt._on_first_suspension)

        async def innermost() -> None:
            attempt._returned = await run_handler()

        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            if self.middleware:
                call: Callable[[], Awaitable[None]] = innermost
                for middleware in reversed(self.middleware):
                    call = _bind(middleware, attempt, call)
                await call()
            else:  # the handler alone: one coroutine less on every resume
                attempt._returned = await run_handler()
            self._handler_returned(running, attempt, started)
            await attempt._finish()
        except BaseException as exc:
            await attempt._close(exc)
            raise

    def _handler_returned(self, running: _Running, attempt: Attempt[Any], started: float) -> None:
        """After the handler returned (``started``: when it began, by the loop's clock): its time
        noted, its slot given to the next claim, and what it returned settled; the caller then
        awaits ``attempt._finish()`` to write it (in its own coroutine: no level between the
        attempt's task and the completion it waits for)."""
        self._note_handler_time(asyncio.get_running_loop().time() - started)
        self._release_slot(running)
        attempt._settle_returned()

    async def _release(self, job: StoredJob) -> None:
        """Give a job back (shutdown): ready again at once, attempt kept, only if still ours."""
        core = self._core
        try:
            async with core.transactions.transaction() as bound:
                await self._check_owned(job.id, tx=bound.tx)
                await core.state.reschedule_job(job.id, schedule=None, error=None, tx=bound.tx)
            core.publish_later({job.type_name: 1}, set(), set(), set())
        except OwnershipLostError:
            return
        except Exception as exc:
            core.emit(StateAdapterError(operation="release", error=repr(exc)))

    async def _record_failure(
        self, running: _Running, exc: Exception, started: float, *, final: bool = False
    ) -> None:
        job = running.job
        config = running.config
        core = self._core
        state = core.state
        if isinstance(exc, BlockerChainFailedError):
            error_text = storable_text(str(exc))
        elif isinstance(exc, JobNotCompletedError):
            error_text = error_head(exc)  # its traceback would show the worker only
        else:
            error_text = serialize_error(exc)
        try:
            async with core.transactions.transaction() as bound:
                tx, hooks = bound.tx, bound.hooks
                await self._check_owned(job.id, tx=tx)
                retry_at: datetime | None
                if isinstance(exc, RescheduleJob):
                    stored = await state.reschedule_job(
                        job.id,
                        schedule=exc.schedule,
                        error=storable_text(exc.reason or str(exc)),
                        tx=tx,
                    )
                    retry_at = stored.scheduled_at
                elif final or (
                    config.max_attempts is not None and job.attempt >= config.max_attempts
                ):
                    result = await state.complete_job(
                        job.id, outcome="failed", worker_id=self.id, error=error_text, tx=tx
                    )
                    core.finishing.after_close(result, worker_id=self.id, hooks=hooks)
                    retry_at = None
                else:
                    stored = await state.reschedule_job(
                        job.id,
                        schedule=Schedule(after=config.backoff.delay(job.attempt)),
                        error=error_text,
                        tx=tx,
                    )
                    retry_at = stored.scheduled_at
                core.after_commit(
                    hooks,
                    AttemptFailed(
                        job_info(job),
                        self.id,
                        loop_time_since(started),
                        type(exc).__name__,
                        str(exc)[:1000],
                        retry_at,
                        rescheduled_by_handler=isinstance(exc, RescheduleJob),
                    ),
                )
        except OwnershipLostError as lost:
            self._lose(job.id, lost.reason)
        except Exception as record_exc:
            # The lease will expire and the reaper returns the job; the attempt is already counted.
            core.emit(StateAdapterError(operation="record_failure", error=repr(record_exc)))


def _bind(
    middleware: AttemptMiddleware, attempt: Attempt[Any], call_next: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        await middleware(attempt, call_next)

    return call


def loop_time_since(started: float) -> float:
    return max(asyncio.get_running_loop().time() - started, 0.0)


async def _finish(task: asyncio.Task[Any], *, timeout: float) -> None:
    """Let ``task`` end within ``timeout`` seconds, then cancel it until it has ended: the lease
    renewer, whose cancellation a store's driver can lose (see :mod:`queuert._tasks`), would
    otherwise go back to sleep before its next renewal, forever."""
    if not task.done() and timeout > 0:
        await asyncio.wait([task], timeout=timeout)
    await cancel_until_done([task])
