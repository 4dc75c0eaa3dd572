"""The state adapter contract: what every storage backend implements.

The core never sees SQL. It calls the operations below, each a named state transition of the job model
(see ``docs/job-model.md``). A backend (PostgreSQL, SQLite, MySQL, MongoDB, in-memory) implements them
once; ``queuert-conformance`` checks that it behaves like the in-memory reference.

Conventions that hold for every operation:

* **Arguments are valid.** The core checks every argument before it calls an operation, so an
  adapter never re-checks one and may rely on all of these: every id is accepted by the adapter's
  id policy (:attr:`StateAdapter.ids`); filters hold only known values (:class:`ChainFilter` and
  :class:`JobFilter` check themselves when built); ``order`` is ``"asc"`` or ``"desc"``, ``limit``
  an int from 1 to :data:`queuert.paging.MAX_LIMIT` and ``cursor`` a cursor of the same list
  (:func:`queuert.paging.check_page`); a :class:`Completion` is consistent (it checks itself);
  inputs and outputs are checked JSON (:func:`queuert.json.ensure_json`). A bad argument is the
  caller's :class:`~queuert.errors.UsageError`, raised before anything is read or written.
* **Ids.** ``ids`` is the adapter's :class:`~queuert.ids.IdPolicy`: which strings its store holds as
  job ids, and how the client makes new ones. An adapter that stores UUIDs declares
  :data:`~queuert.ids.UUID_IDS`. An id the policy accepts but no job has is simply not found.
* **Transactions.** ``transaction()`` opens a transaction and yields the backend's transaction object
  (``TxT``: a connection, a session, ...). Every operation takes ``tx=``. With a ``tx`` it runs inside
  that transaction; without one it runs on the adapter's own connection in its own short transaction
  (and never on a connection that is inside someone else's transaction: a read without ``tx`` must not
  see uncommitted work). ``savepoint(tx)`` nests a savepoint: released on success, rolled back (and the
  error re-raised) on error; the outer transaction stays usable. After a statement fails inside a
  transaction, every operation in it raises :class:`~queuert.errors.TransactionAbortedError` until the
  savepoint that was open at the failure is rolled back, and a transaction left in that state raises
  it when it ends instead of committing.
* **Time.** Every timestamp is computed with the store's clock (``now()`` of the database), never the
  caller's. Timestamps come back timezone-aware in UTC. A job's ``scheduled_at`` is
  :func:`queuert.schedule.scheduled_at` of its schedule at that clock's now.
* **Batches.** Operations that take sequences handle the whole batch in as few round trips as the backend
  allows and return results in input order (unless the operation says otherwise).
* **Locks.** ``lock=True`` takes a write-intent lock on the row (the chain's tail for chains) that is held
  until the transaction ends; a concurrent locked read of the same row waits. "Find work" operations
  (``claim_jobs``, ``reap_expired_leases``, ``next_due``) skip rows locked by other transactions instead
  of waiting on them. Backends that serialise all writers (SQLite, in-memory) meet this trivially.
* **Pages.** List operations are keyset pages: fetch ``limit + 1`` rows in the list's order, after the
  position the cursor decodes to (``queuert.cursor``, one decoder per list), and build the result with
  the list's builder in :mod:`queuert.paging`, which sets ``next_cursor`` only when another row exists.
* **Closing.** ``close()`` closes the adapter whoever owns its connections (a pool or provider it was
  given is left open for its owner, but the adapter itself is closed): afterwards every operation and
  ``transaction()`` raise :class:`~queuert.errors.StateAdapterClosedError`. The adapter is an async
  context manager: ``async with adapter: ...`` yields it and closes it on exit. An adapter that must
  connect first is opened by a function returning a :class:`queuert.opening.Opening` (awaitable, or
  used in ``async with`` directly).
* **Errors.** Operations raise the typed errors of :mod:`queuert.errors` where this module says so; any
  other exception is a backend failure that the caller may retry.

Rules of the job model that a backend restates in its queries (each pinned by ``queuert-conformance``):

* **Status precedence.** A job's status is never stored: it is derived at read time from the stored
  facts by :func:`derive_status` (or an equivalent expression in the query), first match wins: closed
  with a successor → ``continued``; closed → its outcome; leased → ``running``; blocked →
  ``blocked``; ``scheduled_at`` after now → ``scheduled``; else ``ready``. Reads, the ``statuses``
  filter and ``trigger_jobs`` all use this one derivation.
* **Deduplication winner.** A chain start with :class:`~queuert.schedule.Deduplication` matches the
  chains of the same ``chain_type_name`` whose first job has the key, that are not excluded, were
  created within the window (if any) and, for scope ``"open"``, are open (the chain's status is its
  tail's). The newest match wins: the largest (``created_at``, ``id``) of the first job.
* **Unblocking.** A job with blocker chains has ``blocked`` set while at least one of them is open. In
  the operation that closes a chain (its tail closes without a successor), every job that waits for
  it and has no other open blocker chain gets ``blocked`` cleared and ``scheduled_at`` raised to at
  least now; a job that still waits for another open chain stays blocked. A chain that continues
  stays open and releases nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import (
    Any,
    Generic,
    Literal,
    NamedTuple,
    Protocol,
    TypeVar,
    get_args,
    runtime_checkable,
)

from typing_extensions import Self

from queuert._fastinit import blank, fast_init, set_field
from queuert.errors import BlockerReference, InvalidJobIdError, UsageError
from queuert.ids import IdPolicy, check_ids
from queuert.json import JsonValue, UndecodableValue, dumps
from queuert.limits import ConcurrencyLimit
from queuert.schedule import Deduplication, Schedule

__all__ = [
    "READ_OUTPUT",
    "STORED_FIELDS",
    "UNREADABLE_TIME",
    "ActivityBucket",
    "BlockersAdded",
    "Capabilities",
    "ChainFilter",
    "ChainStatus",
    "ClaimResult",
    "CompleteResult",
    "Completion",
    "CreatedJob",
    "DeleteResult",
    "JobActivity",
    "JobFilter",
    "JobStatus",
    "LeaseRenewal",
    "MigrationResult",
    "NewJob",
    "Order",
    "Outcome",
    "Page",
    "QueueStats",
    "StateAdapter",
    "StatusCount",
    "StorageExpiry",
    "StoredChain",
    "StoredJob",
    "SupportsCommitHooks",
    "SupportsStorageMaintenance",
    "TriggerResult",
    "WorkerActivity",
    "activity_buckets",
    "derive_status",
    "in_creation_order",
    "inserted_job",
    "inserted_jobs",
    "queue_stats_in_order",
]

TxT = TypeVar("TxT")
T = TypeVar("T")

JobStatus = Literal[
    "blocked", "scheduled", "ready", "running", "continued", "completed", "failed", "cancelled"
]
"""Derived job status. ``continued``, ``completed``, ``failed`` and ``cancelled`` are closed states."""

Outcome = Literal["completed", "failed", "cancelled"]
"""How a job was closed (a stored fact). ``completed`` with a successor reads as status ``continued``."""

ChainStatus = Literal["open", "closed"]
Order = Literal["asc", "desc"]

JOB_STATUSES: frozenset[str] = frozenset(get_args(JobStatus))
CLOSED_STATUSES: frozenset[str] = frozenset({"continued", "completed", "failed", "cancelled"})
OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))
CHAIN_STATUSES: frozenset[str] = frozenset(get_args(ChainStatus))


def derive_status(
    *,
    outcome: Outcome | None,
    succeeded_by_job_id: str | None,
    leased_until: datetime | None,
    blocked: bool,
    scheduled_at: datetime,
    now: datetime,
) -> JobStatus:
    """The status of a job from its stored facts, in the order the job model fixes.

    1. closed with a successor → ``continued``; closed otherwise → its outcome;
    2. holds a lease → ``running``; 3. has open blockers → ``blocked``;
    4. ``scheduled_at`` in the future → ``scheduled``; 5. otherwise ``ready``.
    """
    if outcome is not None:
        if succeeded_by_job_id is not None:
            return "continued"
        return outcome
    if leased_until is not None:
        return "running"
    if blocked:
        return "blocked"
    if scheduled_at > now:
        return "scheduled"
    return "ready"


UNREADABLE_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)
"""What a stored time that cannot be read reads as (see :attr:`StoredJob.unreadable`)."""


@fast_init
@dataclass(frozen=True)
class StoredJob:
    """One job row as the store holds it (plus its derived ``status``)."""

    id: str
    type_name: str
    chain_id: str
    chain_type_name: str
    chain_index: int
    """0 for the chain's first job, +1 per continuation; ``(chain_id, chain_index)`` is unique."""
    input: JsonValue | UndecodableValue
    """The stored input; a stored text that is not JSON reads as an
    :class:`~queuert.json.UndecodableValue` (adapters decode with :func:`~queuert.json.loads_stored`,
    so one bad row never fails a claim or a read)."""
    output: JsonValue | UndecodableValue
    """The output of a job closed as ``completed`` without a successor; ``None`` otherwise."""
    status: JobStatus
    outcome: Outcome | None
    created_at: datetime
    scheduled_at: datetime
    completed_at: datetime | None
    """When the job was closed (completed, continued, failed or cancelled)."""
    completed_by: str | None
    """The worker id that closed the job; ``None`` for workerless completion and cancellation."""
    succeeded_by_job_id: str | None
    attempt: int
    """Number of attempts started so far (claims); recorded in a committed step at claim time."""
    last_attempt_at: datetime | None
    last_attempt_error: str | None
    leased_by: str | None
    leased_until: datetime | None
    blocked: bool
    """True while at least one blocker chain is open."""
    deduplication_key: str | None = None
    chain_trace_context: str | None = None
    trace_context: str | None = None
    priority: int = 0
    """Claim order among ready jobs: higher first (then oldest ``scheduled_at``, then id)."""
    limit_key: str | None = None
    """The key its type's ``key_limit`` counts by (computed from the input when it was created)."""
    unreadable: tuple[str, str] | None = None
    """``(field, reason)`` when a stored time of this row cannot be read (edited by hand into
    something that is not a time, or a time outside Python's years 1-9999 that the store holds;
    the reason quotes what is stored): the field reads as :data:`UNREADABLE_TIME` (``None`` for an
    optional one), reads still return the row, and a worker that claims the job fails it at once."""

    @property
    def is_closed(self) -> bool:
        return self.outcome is not None

    @property
    def closes_chain(self) -> bool:
        """True if this job is closed and has no successor (the chain is closed)."""
        return self.outcome is not None and self.succeeded_by_job_id is None


@fast_init
@dataclass(frozen=True)
class StoredChain:
    """A chain as the pair of its first job (``root``, which *is* the chain) and its current ``tail``.

    ``tail`` is the job with no successor (the root itself for a one-job chain).
    """

    root: StoredJob
    tail: StoredJob

    @property
    def id(self) -> str:
        return self.root.id

    @property
    def status(self) -> ChainStatus:
        return "closed" if self.tail.closes_chain else "open"


@fast_init
@dataclass(frozen=True)
class NewJob:
    """A job to insert.

    ``id`` is generated with the adapter's id policy, or a caller's id the client checked with it.
    ``chain_id`` is ``None`` for a chain's first job (``chain_index`` 0; the store sets
    ``chain_id = id``) and the chain's id for a continuation, whose ``chain_index`` is the
    predecessor's + 1. ``input`` is checked JSON.
    """

    id: str
    type_name: str
    chain_type_name: str
    input: JsonValue
    chain_id: str | None = None
    chain_index: int = 0
    schedule: Schedule | None = None
    """``scheduled_at`` = max(``at`` or now + ``after``, now); ``None`` means now."""
    deduplication: Deduplication | None = None
    """Only for first jobs. Matched on (``chain_type_name``, key) against *chains* (their status is
    the tail's), newest match wins; race-free against concurrent creators of the same key."""
    chain_trace_context: str | None = None
    trace_context: str | None = None
    fresh_id: bool = False
    """Set by the client when it generated ``id`` itself with the adapter's id policy, so no stored
    job can have it. A store may then write a new chain's job later in the transaction (with
    its next statement or its commit) instead of right away: the insert cannot clash, and if it fails
    for another reason the whole transaction fails. Stores may ignore it."""
    priority: int = 0
    """Stored as is (the core checked the range: a 32-bit signed int)."""
    limit_key: str | None = None
    """Stored as is (the core checked it: 1 to 200 characters, no NUL)."""
    input_text: str | None = None
    """``input`` as compact JSON text (``queuert.json.dumps(input)``) when the client already
    encoded it to check it; a store that writes JSON text may use it instead of encoding again."""

    def input_json(self) -> str:
        """``input`` as compact JSON text: :attr:`input_text` when the client carried it, else
        encoded now (for stores that write JSON text)."""
        return self.input_text if self.input_text is not None else dumps(self.input)


STORED_FIELDS: tuple[str, ...] = (
    "id",
    "type_name",
    "chain_id",
    "chain_type_name",
    "chain_index",
    "input",
    "output",
    "outcome",
    "created_at",
    "scheduled_at",
    "completed_at",
    "completed_by",
    "succeeded_by_job_id",
    "attempt",
    "last_attempt_at",
    "last_attempt_error",
    "leased_by",
    "leased_until",
    "blocked",
    "deduplication_key",
    "chain_trace_context",
    "trace_context",
    "priority",
    "limit_key",
)
"""The stored facts of a :class:`StoredJob` (every field but the derived ``status``), in the order the
SQL adapters select them."""


def inserted_job(
    new: NewJob,
    *,
    input: JsonValue,
    created_at: datetime,
    scheduled_at: datetime,
    status: JobStatus,
) -> StoredJob:
    """The stored form of ``new`` just after its insert, for adapters that assemble it from what they
    sent instead of reading the row back: not yet attempted, leased, blocked or closed (blockers are
    added afterwards). ``input`` is the checked copy of ``new.input`` that was stored."""
    # Built on a copy of a prepared field dict rather than through __init__: batch starts make one
    # per job, and a call with 23 keyword arguments costs about three times as much.
    # (a field a new job leaves at its default is not stored again)
    fields = _FRESH_JOB.copy()
    fields["id"] = new_id = new.id
    fields["type_name"] = new.type_name
    chain_id = new.chain_id
    fields["chain_id"] = new_id if chain_id is None else chain_id
    fields["chain_type_name"] = new.chain_type_name
    fields["chain_index"] = new.chain_index
    fields["input"] = input
    fields["status"] = status
    fields["created_at"] = created_at
    fields["scheduled_at"] = scheduled_at
    _set_optional(fields, new, chain_id)
    set_field(job := blank(StoredJob), "__dict__", fields)
    return job


def _set_optional(fields: dict[str, Any], new: NewJob, chain_id: str | None) -> None:
    """The fields of ``new``'s stored form that a new job often leaves at their defaults, stored
    only where it does not (``chain_id``: the chain it continues, ``None`` for a chain start)."""
    if chain_id is None and new.deduplication is not None:
        fields["deduplication_key"] = new.deduplication.key
    if (context := new.chain_trace_context) is not None:
        fields["chain_trace_context"] = context
    if (context := new.trace_context) is not None:
        fields["trace_context"] = context
    if (priority := new.priority) != 0:
        fields["priority"] = priority
    if (limit_key := new.limit_key) is not None:
        fields["limit_key"] = limit_key


def inserted_jobs(
    news: Sequence[NewJob], *, created_at: datetime, later: Mapping[str, datetime] | None = None
) -> list[CreatedJob]:
    """:func:`inserted_job` for each of ``news`` (none deduplicated), all inserted at
    ``created_at`` with their inputs as given: each due then, or scheduled at its time in ``later``
    (by id) when the store put it later. For adapters that assemble a batch from what they sent,
    in one loop rather than a call per job."""
    results: list[CreatedJob] = []
    append = results.append
    # the fields every job of the batch shares, set once: a copy per job, then its own stored
    # (a field it leaves at its default is not stored again)
    batch = _FRESH_JOB.copy()
    batch["chain_index"] = 0
    batch["status"] = "ready"
    batch["created_at"] = batch["scheduled_at"] = created_at
    fresh = batch.copy
    for new in news:
        fields = fresh()
        fields["id"] = new_id = new.id
        fields["type_name"] = new.type_name
        chain_id = new.chain_id
        fields["chain_id"] = new_id if chain_id is None else chain_id
        fields["chain_type_name"] = new.chain_type_name
        if chain_index := new.chain_index:
            fields["chain_index"] = chain_index
        fields["input"] = new.input
        if later and (at := later.get(new_id)) is not None:
            fields["status"] = "scheduled"
            fields["scheduled_at"] = at
        _set_optional(fields, new, chain_id)
        set_field(job := blank(StoredJob), "__dict__", fields)
        append(_new_created(CreatedJob, (job, False)))
    return results


_new_created = tuple.__new__
"""``_new_created(CreatedJob, (job, deduplicated))``: without the named tuple's ``__new__``."""

_FRESH_JOB: dict[str, Any] = {f.name: None for f in dataclasses.fields(StoredJob)}
_FRESH_JOB.update(attempt=0, blocked=False, priority=0)
"""A new job's fields in declaration order: ``None`` but for the counters (the rest is filled in)."""


class CreatedJob(NamedTuple):
    """Result of :meth:`StateAdapter.create_jobs` for one input: ``(job, deduplicated)``.

    ``deduplicated`` is True when nothing was inserted for this input: ``job`` is then the first job
    of the matching existing chain (deduplication, including an earlier item of the same batch with
    the same chain type and key) or the existing job at the same ``(chain_id, chain_index)``
    (an idempotent continuation).
    """

    job: StoredJob
    deduplicated: bool


@dataclass(frozen=True)
class BlockersAdded:
    """Result of :meth:`StateAdapter.add_blockers` for one job."""

    job: StoredJob
    """The job re-read after the links were added (``blocked`` set if any blocker is open)."""
    open_blocker_chain_ids: list[str]
    blocker_chain_trace_contexts: list[str | None]
    """The ``chain_trace_context`` of each blocker chain, in the order given."""


@dataclass(frozen=True)
class ClaimResult:
    jobs: list[StoredJob]
    """Claimed jobs, oldest ``scheduled_at`` first, each now ``running`` with ``attempt`` + 1."""
    has_more: bool
    """True only if another ready job of the requested types remained after these were taken."""


@dataclass(frozen=True)
class LeaseRenewal:
    renewed: dict[str, datetime]
    """Job id → new ``leased_until`` for every lease still held by the worker."""
    lost: list[str]
    """Ids whose lease the worker no longer holds (reaped, closed, deleted, taken by another worker)."""


@dataclass(frozen=True)
class CompleteResult:
    job: StoredJob
    """The closed job."""
    unblocked: list[StoredJob] = field(default_factory=list)
    """Jobs that became unblocked because this job closed its chain (empty for a continuation)."""
    blocker_trace_contexts: list[str] = field(default_factory=list)
    """Non-null ``trace_context`` values of the blocker links that pointed at the closed chain."""


@dataclass(frozen=True)
class Completion:
    """One job to close with :meth:`StateAdapter.complete_jobs` (same meaning as ``complete_job``).

    Consistent by construction, else :class:`~queuert.errors.UsageError`: ``outcome`` is an
    :data:`Outcome`; only ``completed`` may have a successor; only a job that closes its chain as
    ``completed`` has an ``output`` (``None`` for the others); a ``completed`` job records no
    ``error``. ``output`` is checked JSON (the core encoded it).
    """

    job_id: str
    outcome: Outcome = "completed"
    output: JsonValue = None
    succeeded_by_job_id: str | None = None
    error: str | None = None
    output_text: str | None = field(default=None, compare=False, repr=False)
    """``output`` as compact JSON text (``queuert.json.dumps(output)``) when the core already
    encoded it to check it; a store that writes JSON text may use it instead of encoding again."""
    claimed: StoredJob | None = field(default=None, compare=False, repr=False)
    """The job as its worker claimed it, when the completion is guarded by that worker's lease
    (``owner``): a store may return the closed job as :meth:`closed_job` builds it from this one,
    instead of reading the whole closed row back."""

    def __init__(
        self,
        job_id: str,
        outcome: Outcome = "completed",
        output: JsonValue = None,
        succeeded_by_job_id: str | None = None,
        error: str | None = None,
        output_text: str | None = None,
        claimed: StoredJob | None = None,
    ) -> None:
        if outcome == "completed":
            if succeeded_by_job_id is not None and output is not None:
                raise UsageError("a job that continues its chain has no output")
            if error is not None:
                raise UsageError("a completed job records no error")
        elif outcome in OUTCOMES:
            if succeeded_by_job_id is not None:
                raise UsageError("only a completed job can have a successor")
            if output is not None:
                raise UsageError(f"a {outcome} job has no output")
        else:
            raise UsageError(f"outcome must be completed, failed or cancelled, not {outcome!r}")
        # frozen: fill __dict__ directly, as fast_init does
        self.__dict__.update(
            job_id=job_id,
            outcome=outcome,
            output=output,
            succeeded_by_job_id=succeeded_by_job_id,
            error=error,
            output_text=output_text,
            claimed=claimed,
        )

    @property
    def closes_with_output(self) -> bool:
        """True if the job closes its chain as ``completed`` (its ``output`` is stored)."""
        return self.outcome == "completed" and self.succeeded_by_job_id is None

    def output_json(self) -> str:
        """``output`` as compact JSON text: :attr:`output_text` when the core carried it, else
        encoded now (for stores that write JSON text)."""
        return self.output_text if self.output_text is not None else dumps(self.output)

    @property
    def written_output(self) -> Any:
        """The output of the row this completion closes, known without reading the row back:
        ``output`` when the job closes with it and the core encoded it (the stored text is that
        value's JSON, and the value is the core's own); else :data:`READ_OUTPUT` (the store decodes
        what it wrote)."""
        if self.output_text is not None and self.closes_with_output:
            return self.output
        return READ_OUTPUT

    @property
    def closes_from_claim(self) -> bool:
        """True when a store may return :meth:`closed_job` instead of reading the closed row back:
        both the job as its worker claimed it (:attr:`claimed`) and the output the row now holds
        (:attr:`written_output`) are known."""
        return self.claimed is not None and self.written_output is not READ_OUTPUT

    def closed_job(
        self,
        *,
        completed_at: datetime,
        completed_by: str | None,
        attempt: int,
        last_attempt_at: datetime | None,
    ) -> StoredJob:
        """The job this completion closed, as reading its row back gives it: :attr:`claimed` (which
        must be set) with what the close wrote, and what the store returned of the closed row (its
        close time, and its attempt, which a later claim of the same job may have moved on)."""
        claimed = self.claimed
        assert claimed is not None and self.closes_from_claim
        outcome = self.outcome
        successor = self.succeeded_by_job_id
        values = dict(claimed.__dict__)
        values.update(
            output=self.output,
            status=derive_status(
                outcome=outcome,
                succeeded_by_job_id=successor,
                leased_until=None,
                blocked=claimed.blocked,
                scheduled_at=claimed.scheduled_at,
                now=completed_at,
            ),
            outcome=outcome,
            completed_at=completed_at,
            completed_by=completed_by,
            succeeded_by_job_id=successor,
            attempt=attempt,
            last_attempt_at=last_attempt_at,
            last_attempt_error=None
            if outcome == "completed"
            else self.error
            if self.error is not None
            else claimed.last_attempt_error,
            leased_by=None,
            leased_until=None,
        )
        set_field(job := blank(StoredJob), "__dict__", values)
        return job


READ_OUTPUT: Any = object()
"""What :attr:`Completion.written_output` is when the closed row's output is to be read back."""


@dataclass(frozen=True)
class TriggerResult:
    triggered: list[StoredJob]
    not_found: list[str]
    not_triggerable: list[tuple[str, JobStatus]]


@dataclass(frozen=True)
class DeleteResult:
    deleted: list[StoredChain]
    """Every deleted chain exactly once, in no particular order (see :func:`in_creation_order`)."""
    references: list[BlockerReference]
    """If not empty, nothing was deleted."""


def in_creation_order(chains: Sequence[StoredChain]) -> list[StoredChain]:
    """``chains`` ordered by their first job's (``created_at``, ``id``), oldest first: the order in
    which the client returns deleted chains, whatever order the adapter found them in."""
    return sorted(chains, key=lambda c: (c.root.created_at, c.root.id))


@dataclass(frozen=True)
class QueueStats:
    """The open jobs of one job type, counted by :meth:`StateAdapter.get_queue_stats` in one reading.

    Every count is of open jobs by their derived status (see :func:`derive_status`).
    """

    type_name: str
    ready: int = 0
    """Jobs that a worker could claim now (status ``ready``): the backlog."""
    oldest_ready_age: timedelta | None = None
    """How long the oldest ready job has been due (now minus its ``scheduled_at``, never negative);
    ``None`` when no job is ready."""
    scheduled: int = 0
    """Jobs due later (status ``scheduled``)."""
    blocked: int = 0
    """Jobs waiting for blocker chains (status ``blocked``)."""
    running: int = 0
    """Jobs holding a lease (status ``running``), including those counted in ``lease_expired``."""
    lease_expired: int = 0
    """Running jobs whose lease has expired (``leased_until <= now``) and that no reaper has put back
    yet: work a dead or stalled worker holds."""


def queue_stats_in_order(
    stats: Sequence[QueueStats], type_names: Sequence[str] | None
) -> list[QueueStats]:
    """The shape every adapter returns: ``stats`` (one per type that has open jobs) sorted by
    ``type_name``; with ``type_names``, exactly one entry per distinct name asked for (all zeros for a
    type without open jobs) and none for the others."""
    by_type = {s.type_name: s for s in stats}
    if type_names is not None:
        return [by_type.get(name) or QueueStats(name) for name in sorted(set(type_names))]
    return [by_type[name] for name in sorted(by_type)]


@dataclass(frozen=True)
class MigrationResult:
    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unrecognized: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    """Opaque cursor of the next page; ``None`` when there is none (never a false positive)."""


@dataclass(frozen=True)
class ChainFilter:
    """Filters of :meth:`StateAdapter.list_chains`; every given filter must match (AND).

    Checks itself when built (:class:`~queuert.errors.UsageError` for an unknown ``status``, a
    sequence that is a plain string or holds something other than strings, a naive datetime);
    sequences are stored as tuples and datetimes in UTC. :meth:`check_ids` checks the ids against an
    adapter's id policy. An empty sequence matches nothing.
    """

    type_names: Sequence[str] | None = None
    status: ChainStatus | None = None
    chain_ids: Sequence[str] | None = None
    job_ids: Sequence[str] | None = None
    """Chains that contain any of these jobs."""
    root_only: bool = False
    """Exclude chains that some job waits for as a blocker."""
    created_from: datetime | None = None
    """Inclusive lower bound on the chain's (first job's) ``created_at``."""
    created_to: datetime | None = None
    """Exclusive upper bound."""
    deduplication_keys: Sequence[str] | None = None
    """Chains whose first job was started with one of these deduplication keys."""

    def __post_init__(self) -> None:
        _strings(self, "type_names")
        _strings(self, "deduplication_keys")
        if self.status is not None and self.status not in CHAIN_STATUSES:
            raise UsageError(f"chain status must be 'open' or 'closed', not {self.status!r}")
        _strings(self, "chain_ids")
        _strings(self, "job_ids")
        if not isinstance(self.root_only, bool):
            raise UsageError(f"root_only must be a bool, not {self.root_only!r}")
        _moment(self, "created_from")
        _moment(self, "created_to")

    def check_ids(self, ids: IdPolicy) -> None:
        """Raise :class:`~queuert.errors.InvalidJobIdError` for an id ``ids`` does not accept."""
        if self.chain_ids is not None:
            check_ids(ids, self.chain_ids, argument="chain_ids")
        if self.job_ids is not None:
            check_ids(ids, self.job_ids, argument="job_ids")


@dataclass(frozen=True)
class JobFilter:
    """Filters of :meth:`StateAdapter.list_jobs`; every given filter must match (AND).

    Checks itself like :class:`ChainFilter` (a status that is not a :data:`JobStatus` is a
    :class:`~queuert.errors.UsageError`).
    """

    type_names: Sequence[str] | None = None
    statuses: Sequence[JobStatus] | None = None
    job_ids: Sequence[str] | None = None
    chain_ids: Sequence[str] | None = None
    chain_type_names: Sequence[str] | None = None
    """The chain's type (its first job's), not the job's."""
    created_from: datetime | None = None
    """Inclusive lower bound on the job's ``created_at``."""
    created_to: datetime | None = None
    """Exclusive upper bound."""

    def __post_init__(self) -> None:
        _strings(self, "type_names")
        _strings(self, "statuses")
        for status in self.statuses or ():
            if status not in JOB_STATUSES:
                known = ", ".join(sorted(JOB_STATUSES))
                raise UsageError(f"unknown job status {status!r} (known: {known})")
        _strings(self, "job_ids")
        _strings(self, "chain_ids")
        _strings(self, "chain_type_names")
        _moment(self, "created_from")
        _moment(self, "created_to")

    def check_ids(self, ids: IdPolicy) -> None:
        """Raise :class:`~queuert.errors.InvalidJobIdError` for an id ``ids`` does not accept."""
        if self.job_ids is not None:
            check_ids(ids, self.job_ids, argument="job_ids")
        if self.chain_ids is not None:
            check_ids(ids, self.chain_ids, argument="chain_ids")


def _strings(filter: object, name: str) -> None:
    """Store the filter's sequence ``name`` as a tuple of strings (``None`` stays ``None``)."""
    value = getattr(filter, name)
    if value is None:
        return
    if isinstance(value, (str, bytes)):
        raise UsageError(
            f"{name} must be a sequence of strings, not a single {type(value).__name__}"
        )
    try:
        items = tuple(value)
    except TypeError:
        raise UsageError(f"{name} must be a sequence of strings, not {value!r}") from None
    for i, item in enumerate(items):
        if type(item) is not str:
            if name in _ID_FIELDS:
                raise InvalidJobIdError(item, "caller", argument=f"{name}[{i}]")
            raise UsageError(f"{name}[{i}] must be a str, not {item!r}")
    object.__setattr__(filter, name, items)


_ID_FIELDS = frozenset({"chain_ids", "job_ids"})


def _moment(filter: object, name: str) -> None:
    """Store the filter's datetime ``name`` in UTC; refuse anything but a timezone-aware datetime."""
    value = getattr(filter, name)
    if value is None:
        return
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise UsageError(f"{name} must be a timezone-aware datetime, not {value!r}")
    object.__setattr__(filter, name, value.astimezone(timezone.utc))


@dataclass(frozen=True)
class StatusCount:
    """How many jobs of one type have one status (a row of :attr:`JobActivity.counts`)."""

    type_name: str
    status: JobStatus
    count: int


@dataclass(frozen=True)
class ActivityBucket:
    """Jobs closed in one slice of :meth:`StateAdapter.get_job_activity`'s window."""

    start: datetime
    """Inclusive start of the slice; it ends where the next one starts (the last one at ``now``)."""
    completed: int
    """Jobs closed as ``completed`` in the slice, continued ones included."""
    failed: int
    """Jobs closed as ``failed`` in the slice."""


@dataclass(frozen=True)
class WorkerActivity:
    """A worker that closed jobs in :meth:`StateAdapter.get_job_activity`'s window."""

    worker_id: str
    closed: int
    """Jobs it closed in the window (any outcome)."""
    last_closed_at: datetime


@dataclass(frozen=True)
class JobActivity:
    """What the store holds and what it did recently: :meth:`StateAdapter.get_job_activity`."""

    now: datetime
    """The store's clock when it was read."""
    since: datetime
    """``now - window``: the start of the window."""
    counts: list[StatusCount]
    """Every open job, and every job closed at or after ``since``, counted by (type, derived
    status); only non-zero counts, ordered by type name then status."""
    buckets: list[ActivityBucket]
    """The window cut into equal slices, oldest first (one per requested bucket)."""
    workers: list[WorkerActivity]
    """Every ``completed_by`` of the jobs closed in the window, ordered by worker id."""


def activity_buckets(
    since: datetime, window: timedelta, buckets: int, closed: Mapping[tuple[int, str], int]
) -> list[ActivityBucket]:
    """The buckets of a :class:`JobActivity` from closings counted by (bucket index, status):
    an index past the last bucket (a job closed exactly at ``now``) counts in the last one;
    ``continued`` counts as completed; other statuses are left out."""
    completed = [0] * buckets
    failed = [0] * buckets
    for (index, status), count in closed.items():
        i = min(max(index, 0), buckets - 1)
        if status in ("completed", "continued"):
            completed[i] += count
        elif status == "failed":
            failed[i] += count
    width = window / buckets
    return [
        ActivityBucket(start=since + width * i, completed=completed[i], failed=failed[i])
        for i in range(buckets)
    ]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the conformance suites consult these instead of keeping skip lists."""

    savepoints: bool = True
    """``savepoint(tx)`` rolls back only its own work and leaves the transaction usable."""
    row_locks: bool = True
    """``lock=True`` makes a concurrent locked read of the same row wait until commit."""
    concurrent_transactions: bool = True
    """Several transactions can be open at once (False: transactions are serialised)."""
    multi_process: bool = True
    """Several processes can share one store."""
    poison_transaction: bool = False
    """The adapter's harness can make a statement fail inside a transaction (for error-path tests)."""
    concurrency_limits: bool = False
    """``claim_jobs`` enforces ``limits`` (a worker refuses limited job types otherwise)."""


@runtime_checkable
class SupportsCommitHooks(Protocol):
    """Optional for state adapters: run callbacks when a caller's transaction ends.

    Where the driver or ORM exposes transaction events (SQLAlchemy sessions do), the client uses this
    to flush its transaction hooks after the commit by itself, so callers cannot forget to wrap
    their transaction in ``client.hooks(...)``.
    """

    def attach_commit_hooks(
        self, tx: Any, on_commit: Callable[[], None], on_rollback: Callable[[], None]
    ) -> bool:
        """Arrange for ``on_commit()`` after ``tx`` commits and ``on_rollback()`` after it rolls back
        (each at most once, whichever comes first). Return False if ``tx`` offers no such events."""
        ...


@dataclass(frozen=True)
class StorageExpiry:
    """What one run of a state adapter's own storage maintenance did (see
    :class:`SupportsStorageMaintenance`)."""

    chains: int = 0
    """Chains removed with the partitions dropped."""
    jobs: int = 0
    """Jobs removed with the partitions dropped."""
    partitions_dropped: int = 0
    partitions_created: int = 0
    partitions_kept: int = 0
    """Partitions old enough to drop that still hold something needed (an open chain, a chain
    closed more recently, a chain another chain waits for): their expired chains are deleted row by
    row instead."""
    estimated: bool = False
    """``chains`` and ``jobs`` are (partly) the database's estimates, not counts."""


@runtime_checkable
class SupportsStorageMaintenance(Protocol):
    """Optional for state adapters: maintenance of the adapter's own storage layout, such as
    partitions created ahead and expired ones dropped whole (PostgreSQL's partitioned layout).

    Retention runs call it first, under the maintenance lease, with the run's cutoff; the chains it
    removes count as deleted by the run, and the run then deletes what is left row by row. Storage
    maintenance runs (every ``storage_maintenance_every``, retention or not) call it without a
    cutoff. An adapter without the layout returns an empty :class:`StorageExpiry`.
    """

    @property
    def storage_maintenance_every(self) -> timedelta | None:
        """How often the workers should run ``maintain_storage()`` even without retention (see
        :mod:`queuert.storage_maintenance`); None: the layout needs no runs of its own."""
        ...

    async def maintain_storage(self, closed_before: datetime | None = None) -> StorageExpiry:
        """Create what the layout needs ahead and, with ``closed_before``, remove whole units
        (partitions) whose chains all closed before it and that no chain outside them waits for."""
        ...


@runtime_checkable
class StateAdapter(Protocol[TxT]):
    """Storage of jobs, chains and blocker links. See the module docstring for the shared conventions."""

    capabilities: Capabilities
    ids: IdPolicy
    """Which strings are job ids in this store, and how new ones are made (the core enforces it)."""

    # -- lifecycle and transactions ---------------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[TxT]:
        """Open a transaction: commit when the block exits normally, roll back when it raises."""
        ...

    def savepoint(self, tx: TxT) -> AbstractAsyncContextManager[TxT]:
        """A savepoint inside ``tx``: released on success, rolled back and re-raised on error."""
        ...

    async def migrate(self) -> MigrationResult:
        """Create or upgrade the schema. Idempotent; safe when several processes run it at once."""
        ...

    async def close(self) -> None:
        """Close the adapter and release the resources it owns (a pool or provider it was given
        stays open for its owner). Idempotent; later operations and ``transaction()`` raise
        :class:`~queuert.errors.StateAdapterClosedError` whoever owns the connections."""
        ...

    async def __aenter__(self) -> Self:
        """``async with adapter: ...`` yields the adapter itself..."""
        ...

    async def __aexit__(self, *exc: object) -> None:
        """...and closes it when the block ends (also when it raises)."""
        ...

    # -- creating ---------------------------------------------------------------------------------

    async def create_jobs(
        self, jobs: Sequence[NewJob], *, tx: TxT | None = None
    ) -> list[CreatedJob]:
        """Insert jobs (chain starts and continuations); one result per input, in input order.

        Deduplication and continuation idempotency as described on :class:`NewJob` /
        :class:`CreatedJob`. A caller-supplied id already used by another job raises
        :class:`~queuert.errors.DuplicateJobIdError` and nothing of the batch is written.
        An empty batch returns ``[]``.
        """
        ...

    async def add_blockers(
        self,
        links: Sequence[tuple[str, Sequence[str]]],
        *,
        trace_contexts: Sequence[Sequence[str | None]] | None = None,
        tx: TxT | None = None,
    ) -> list[BlockersAdded]:
        """Make each job ``links[i][0]`` wait for the chains ``links[i][1]`` (in slot order).

        Locks the tail of every blocker chain before deciding whether it is open, so a blocker chain
        closing concurrently is never missed (no dependent is stranded ``blocked``, none released
        early). A blocker chain that is already closed does not block. The same chain may appear
        in several slots of one job. A missing blocker chain raises
        :class:`~queuert.errors.ChainNotFoundError`. ``trace_contexts[i][j]`` is stored on link j
        (``trace_contexts`` has one entry per link and per chain when given).
        """
        ...

    # -- reading ----------------------------------------------------------------------------------

    async def get_job(
        self, job_id: str, *, lock: bool = False, tx: TxT | None = None
    ) -> StoredJob | None: ...

    async def get_chain(
        self, chain_id: str, *, lock: bool = False, tx: TxT | None = None
    ) -> StoredChain | None:
        """The chain whose first job has id ``chain_id`` (``None`` if missing or if ``chain_id``
        is not a first job). ``lock`` locks the tail only."""
        ...

    async def get_job_blockers(self, job_id: str, *, tx: TxT | None = None) -> list[StoredChain]:
        """The blocker chains of a job, in slot order (``[]`` if none or job missing)."""
        ...

    async def next_due(
        self, type_names: Sequence[str], *, tx: TxT | None = None
    ) -> timedelta | None:
        """Time until the earliest job of these types that is open, not blocked and not leased becomes
        ready (``timedelta(0)`` if one is ready now); ``None`` if there is none. Skips locked rows."""
        ...

    async def list_chains(
        self,
        filter: ChainFilter,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[StoredChain]:
        """Chains ordered by the first job's (``created_at``, ``id``); ``cursor`` is a cursor of this
        list (decode it with :func:`queuert.cursor.decode_chains_cursor`, build the page with
        :func:`queuert.paging.chains_page`)."""
        ...

    async def list_jobs(
        self,
        filter: JobFilter,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[StoredJob]:
        """Jobs ordered by (``created_at``, ``id``) (:func:`~queuert.cursor.decode_jobs_cursor`,
        :func:`~queuert.paging.jobs_page`)."""
        ...

    async def list_chain_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "asc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[StoredJob]:
        """The jobs of one chain ordered by ``chain_index``; none if ``chain_id`` is not a chain
        (:func:`~queuert.cursor.decode_chain_jobs_cursor`, :func:`~queuert.paging.chain_jobs_page`)."""
        ...

    async def list_blocked_jobs(
        self,
        chain_id: str,
        *,
        order: Order = "desc",
        cursor: str | None = None,
        limit: int = 50,
        tx: TxT | None = None,
    ) -> Page[StoredJob]:
        """Jobs that have ``chain_id`` among their blockers (open or not), by (``created_at``, ``id``)
        (:func:`~queuert.cursor.decode_blocked_jobs_cursor`, :func:`~queuert.paging.blocked_jobs_page`)."""
        ...

    async def get_queue_stats(
        self, type_names: Sequence[str] | None = None, *, tx: TxT | None = None
    ) -> list[QueueStats]:
        """How many open jobs of each type are ready, scheduled, blocked, running and running on an
        expired lease, with the age of the oldest ready job: one consistent reading (one statement
        where the backend allows), with one clock reading as now.

        Without ``type_names``: one entry per type that has at least one open job; with them: one
        entry per distinct name given (zeros for a type without open jobs). Sorted by type name
        (:func:`queue_stats_in_order`). Closed jobs are never read: a backend serves this from
        indexes over open jobs, so its cost grows with the open jobs, not with the history.
        Takes no locks and skips none (a count includes rows other transactions have locked).
        """
        ...

    async def get_job_activity(
        self, *, window: timedelta, buckets: int, tx: TxT | None = None
    ) -> JobActivity:
        """Counts of the store and of its recent work, read at the store's ``now``, with
        ``since = now - window``: every open job and every job closed (``completed_at``) at or after
        ``since`` counted by (type, derived status); the closings of the window in ``buckets``
        equal slices (slice ``i`` starts at ``since + i * window / buckets``;
        :func:`activity_buckets` builds them from counts by slice index); and the workers that
        closed jobs in it. ``window`` is positive and ``buckets`` from 1 to 1440 (the core checks
        both)."""
        ...

    # -- processing -------------------------------------------------------------------------------

    async def claim_jobs(
        self,
        *,
        leases: Mapping[str, timedelta],
        limit: int,
        worker_id: str,
        limits: Mapping[str, ConcurrencyLimit] | None = None,
        tx: TxT | None = None,
    ) -> ClaimResult:
        """Claim up to ``limit`` ready jobs whose type is a key of ``leases``, highest ``priority``
        first, then oldest ``scheduled_at`` (ties by id), in one atomic step: each gets ``attempt + 1``, ``last_attempt_at = now``,
        ``leased_by = worker_id`` and ``leased_until = now + leases[type]``. Two claimers never get the
        same job; rows locked by other transactions are skipped, never waited on.

        ``limits`` (only on adapters with ``capabilities.concurrency_limits``; the core passes only
        set limits of requested types): a job is taken only if, counting the jobs of its type that
        are running (open and leased, expired or not) and those taken before it in this claim, its
        type stays within ``limit`` and its (type, ``limit_key``) within ``key_limit``; a job that
        does not fit is skipped and the ones after it are still considered
        (:func:`queuert.limits.take_within_limits`). This holds against every concurrent claimer
        of the store: an adapter that cannot tell whether a claim of the same type or key committed
        since it counted takes none of those jobs this time (and reports ``has_more``).
        ``has_more`` is true when another job could have been taken within the limits."""
        ...

    async def renew_leases(
        self, leases: Mapping[str, timedelta], *, worker_id: str, tx: TxT | None = None
    ) -> LeaseRenewal:
        """For every job id in ``leases`` still leased by ``worker_id`` and open, set ``leased_until =
        now + duration``; report the others as lost. One round trip for all of them."""
        ...

    async def complete_job(
        self,
        job_id: str,
        *,
        outcome: Outcome,
        worker_id: str | None,
        output: JsonValue = None,
        succeeded_by_job_id: str | None = None,
        error: str | None = None,
        owner: str | None = None,
        tx: TxT | None = None,
    ) -> CompleteResult:
        """Close a job: ``completed_at = now``, ``completed_by = worker_id``, the lease cleared.

        * ``outcome="completed"`` with ``succeeded_by_job_id``: the job continued (output stays null,
          the chain stays open).
        * ``outcome="completed"`` without a successor: the chain is closed with ``output``.
        * ``outcome="failed"`` (``error`` recorded as ``last_attempt_error``) or ``"cancelled"``:
          the chain is closed without output.

        A successful ``completed`` clears ``last_attempt_error``. When the chain closes, every job
        that waits for it and has no other open blocker is unblocked (``scheduled_at`` raised to
        at least now) and returned. Raises :class:`~queuert.errors.JobNotFoundError` if the row is
        gone and :class:`~queuert.errors.JobAlreadyCompletedError` if it is already closed.

        With ``owner``, the job must also be leased by ``owner`` (checked under the row's write lock,
        in the same statement where the backend allows), else
        :class:`~queuert.errors.JobTakenByAnotherWorkerError`; nothing changes when it raises.
        Without ``tx`` the operation runs in its own transaction.
        """
        ...

    async def complete_jobs(
        self,
        completions: Sequence[Completion],
        *,
        worker_id: str | None,
        owner: str | None = None,
        tx: TxT | None = None,
    ) -> list[CompleteResult | None]:
        """Close several jobs at once, each as :meth:`complete_job` would; results in input order.

        A job that is missing or already closed — or, with ``owner``, not leased by ``owner`` — is
        left untouched and its result is ``None``. The others are closed (and their dependents
        unblocked) atomically, in one round trip where the backend allows. Each job appears at
        most once (the core guarantees it). A job released by several of the closings appears in
        the ``unblocked`` of exactly one result.
        """
        ...

    async def reschedule_job(
        self,
        job_id: str,
        *,
        schedule: Schedule | None,
        error: str | None,
        tx: TxT | None = None,
    ) -> StoredJob:
        """Put a running job back: lease cleared, ``scheduled_at`` per ``schedule`` (``None`` = now,
        never earlier than now), ``last_attempt_error = error`` unless ``error`` is ``None`` (kept).
        Raises :class:`~queuert.errors.JobNotFoundError` if missing."""
        ...

    async def reap_expired_leases(
        self,
        type_names: Sequence[str],
        *,
        limit: int,
        exclude_job_ids: Sequence[str] = (),
        tx: TxT | None = None,
    ) -> list[StoredJob]:
        """Return up to ``limit`` open jobs of these types whose lease expired (``leased_until <=
        now``) to ready, oldest expiry first, skipping locked rows and ``exclude_job_ids``. The
        returned rows show the lease they had (``leased_by`` / ``leased_until`` of the expired lease)
        so the caller can tell the old owner; the stored lease is cleared."""
        ...

    # -- administration ---------------------------------------------------------------------------

    async def trigger_jobs(self, job_ids: Sequence[str], *, tx: TxT | None = None) -> TriggerResult:
        """Make ``scheduled``/``ready`` jobs ready now (``scheduled_at = now``). All or nothing: if any
        id is missing or in another status, nothing changes and the result lists them."""
        ...

    async def delete_chains(
        self, chain_ids: Sequence[str], *, cascade: bool = False, tx: TxT | None = None
    ) -> DeleteResult:
        """Delete whole chains (every job and blocker link), all or nothing.

        With ``cascade``, the set first grows by the blocker chains of *every* job of the chains in
        it, transitively. If a job outside the set is blocked by a chain inside it, nothing is deleted
        and the references are returned (in no particular order). Ids that are missing or not chains
        are skipped, an id given twice counts once. ``deleted`` holds every deleted chain exactly
        once, in no particular order: the client orders it (:func:`in_creation_order`).
        """
        ...
