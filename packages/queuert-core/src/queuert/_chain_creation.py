"""Chain creation: new jobs checked and planned as rows, then written with their blocker links.

Planning validates everything before anything is written: the job is an instance of a registered
type (an entry type to start a chain), its input encodes, its blockers match the declared slots, a
caller's id is one the state adapter's id policy accepts (else the policy generates one), and
deduplication is only asked of chain starts. It turns each job
into a :class:`~queuert.state.NewJob` row and the ids of the chains it waits for. Writing creates the
rows in one state operation, links the blockers in another, and buffers the events and wake-ups of
what was created in the transaction's hooks.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import replace
from operator import attrgetter, itemgetter
from types import MappingProxyType
from typing import Any, Generic, NamedTuple, TypeVar

from queuert._bound_transaction import BoundTransaction
from queuert._fastinit import blank, set_field
from queuert._publishing import Publishing
from queuert.codec import CodecError
from queuert.errors import JobTypeValidationError, NotJsonError, UsageError
from queuert.hooks import TransactionHooks
from queuert.ids import check_id, check_ids
from queuert.job_types import JobType, JobTypeRegistry
from queuert.limits import check_limit_key
from queuert.models import Chain, Job
from queuert.notify import Notifications, NotifyInTransaction
from queuert.observability import (
    BlockerLink,
    ChainCreated,
    ChainDeduplicated,
    JobBlocked,
    JobCreated,
    JobInfo,
)
from queuert.payload import Payloads
from queuert.state import CreatedJob, NewJob, StateAdapter, StoredJob
from queuert.state_publishing import SupportsCreatePublishing
from queuert.tracing import TraceContexts

__all__ = ["ChainCreation", "PlannedJob"]

logger = logging.getLogger("queuert.client")

TxT = TypeVar("TxT")
AnyJob = JobType[Any, Any]


class PlannedJob(NamedTuple):
    """A job ready to write: its row and the ids of the chains it waits for (slot order)."""

    row: NewJob
    blockers: list[str]


_new_plan = tuple.__new__

_NO_BLOCKERS: list[str] = []
"""The blockers of every planned job that waits for none (shared, never changed: no list per
job)."""


class ChainCreation(Generic[TxT]):
    """Plans and writes new jobs: chain starts and continuations."""

    def __init__(
        self,
        state: StateAdapter[TxT],
        registry: JobTypeRegistry,
        payloads: Payloads,
        publishing: Publishing,
    ) -> None:
        self._state = state
        self._registry = registry
        self._payloads = payloads
        self._publishing = publishing
        self._ids = state.ids
        self._publishing_state: SupportsCreatePublishing | None = (
            state if isinstance(state, SupportsCreatePublishing) else None
        )
        """``state`` if it can publish the wake-ups of new chains itself (a protocol check is slow:
        done once here, not per start)."""
        self._starts_publisher: NotifyInTransaction | None = None
        """What publishes the wake-ups of chains started without a caller's transaction in the
        state adapter's own, once :meth:`Publishing.for_starts` found one."""
        self._checked: dict[type[AnyJob], tuple[Any, bool, str, bool]] = {}
        """Per job type found registered: its input type, whether it declares blockers, its name
        and whether it has a limit key (a registry only grows, and these are fixed per class)."""
        self._view_fields: dict[str, tuple[Callable[[], dict[str, Any]], dict[str, Any]]] = {}
        """Per chain type started: the ``copy`` of the fields every new chain of it has in its
        first job's view (see :meth:`started`), and those of its chain's view."""

    # -- planning (no writes) -------------------------------------------------------------------

    def plan_starts(self, jobs: Sequence[AnyJob]) -> list[PlannedJob]:
        """Rows for new chains started with ``jobs`` (instances of entry job types)."""
        if len(jobs) > 1:
            # a batch checked per type (it has few), else per job in order: the first job's error
            # raised
            kinds = set(map(type, jobs))
            for kind in kinds:
                if not (issubclass(kind, JobType) and kind.entry):
                    break
            else:
                plans = self._plan(jobs, None, kinds)
                return plans if self._publishing.tracing is None else self._traced(plans, None)
        for job in jobs:
            if not isinstance(job, JobType):
                raise UsageError(
                    f"start_chain takes a job (an instance of a job type), not {job!r}"
                )
            if not type(job).entry:
                raise JobTypeValidationError(
                    "not_entry_point", type(job).type_name, "only entry job types can start a chain"
                )
        plans = self._plan(jobs, None)
        return plans if self._publishing.tracing is None else self._traced(plans, None)

    def plan(self, jobs: Sequence[AnyJob], continuation_of: StoredJob | None) -> list[PlannedJob]:
        """Rows for ``jobs``: new chains, or the next job of ``continuation_of``'s chain (with the
        trace contexts of the tracing adapter, if there is one)."""
        plans = self._plan(jobs, continuation_of)
        return plans if self._publishing.tracing is None else self._traced(plans, continuation_of)

    def _traced(
        self, plans: list[PlannedJob], continuation_of: StoredJob | None
    ) -> list[PlannedJob]:
        """``plans`` with the trace contexts of the tracing adapter."""
        tracing = self._publishing.tracing
        assert tracing is not None
        traced: list[PlannedJob] = []
        try:
            for plan in plans:
                traced.append(
                    PlannedJob(_with_contexts(tracing, plan.row, continuation_of), plan.blockers)
                )
        except BaseException:
            self.abandon(traced)
            raise
        return traced

    def abandon(self, plans: Sequence[PlannedJob]) -> None:
        """The planned jobs will not be written: their trace contexts are given up."""
        contexts = [c for p in plans for c in (p.row.chain_trace_context, p.row.trace_context) if c]
        if contexts:
            self._publishing.abandon(contexts)

    def _plan(
        self,
        jobs: Sequence[AnyJob],
        continuation_of: StoredJob | None,
        kinds: set[type[AnyJob]] | None = None,
    ) -> list[PlannedJob]:
        """``jobs`` planned (``kinds``: their types, if the caller has them)."""
        plans: list[PlannedJob] = []
        append = plans.append
        encode = self._payloads.encode_text
        ids = self._ids
        generate = ids.generate
        many = ids.generate_many
        # a batch's new ids made at once, one per job (a caller's id leaves its one unused)
        fresh = iter(many(len(jobs))) if many is not None and len(jobs) > 1 else None
        # per job type, checked once: its input type, whether it declares blockers, its name and
        # whether it has a limit key
        checked = self._checked
        start_fields = _START_FIELDS.copy
        # a batch of one job type: the type checked once and its inputs encoded together (else,
        # or when one of them needs more, one by one in the loop, which raises the first job's
        # error)
        encoded = None
        single = None
        if len(jobs) > 1:
            if kinds is None:
                kinds = set(map(type, jobs))
            if len(kinds) == 1:
                single = self._known(type(jobs[0]))
                input_type, declares_blockers, type_name, keyed = single
                encoded = self._payloads.encode_texts(input_type, list(map(_INPUT, jobs)))
        if encoded is not None:
            next_payload, next_text = iter(encoded[0]).__next__, iter(encoded[1]).__next__
        for job in jobs:
            if single is None:
                jt = type(job)
                known = checked.get(jt)
                if known is None:
                    known = self._check_type(jt)
                input_type, declares_blockers, type_name, keyed = known
            if encoded is not None:
                payload, text = next_payload(), next_text()
            else:
                try:
                    payload, text = encode(input_type, job.input, what="input", type_name=type_name)
                except NotJsonError:
                    raise
                except CodecError as exc:
                    raise JobTypeValidationError("invalid_input", type_name, str(exc)) from exc
            blockers = (
                self._check_blockers(job) if declares_blockers or job.blockers else _NO_BLOCKERS
            )
            dedup = job.deduplication
            if continuation_of is None:
                if dedup is not None and dedup.exclude_chain_ids:
                    check_ids(
                        ids, dedup.exclude_chain_ids, argument="deduplication.exclude_chain_ids"
                    )
            elif dedup is not None:
                raise UsageError("deduplication applies to chain starts, not to continuations")
            # the caller's id is checked with the adapter's id policy, else a new one is made (no
            # stored job has a generated id: ``NewJob.fresh_id``)
            given_id = job.id
            if given_id is not None:
                new_id = check_id(ids, given_id, argument="id")
            else:
                new_id = generate() if fresh is None else next(fresh)
            if continuation_of is None:
                # the fields in declaration order, without NewJob.__init__'s keyword arguments: a
                # copy of a new chain's fields, those of this job set (a copy and a few stores
                # cost less than a dict display of every field)
                fields = start_fields()
                fields["id"] = new_id
                fields["type_name"] = fields["chain_type_name"] = type_name
                fields["input"] = payload
                fields["input_text"] = text
                if given_id is not None:
                    fields["fresh_id"] = False
                schedule = job.schedule
                if schedule is not None:
                    fields["schedule"] = schedule
                if dedup is not None:
                    fields["deduplication"] = dedup
                priority = job.priority
                if priority:
                    fields["priority"] = priority
                if keyed:
                    fields["limit_key"] = _limit_key(job)
                set_field(row := blank(NewJob), "__dict__", fields)
            else:
                row = NewJob(
                    id=new_id,
                    type_name=type_name,
                    chain_type_name=continuation_of.chain_type_name,
                    input=payload,
                    chain_id=continuation_of.chain_id,
                    chain_index=continuation_of.chain_index + 1,
                    schedule=job.schedule,
                    # a continuation keeps its chain's priority unless it sets its own
                    priority=continuation_of.priority if job.priority is None else job.priority,
                    limit_key=_limit_key(job) if keyed else None,
                    input_text=text,
                )
            append(_new_plan(PlannedJob, (row, blockers)))  # without the named tuple's __new__
        return plans

    def _known(self, jt: type[AnyJob]) -> tuple[Any, bool, str, bool]:
        """A job type checked as registered: its input type, whether it declares blockers, its
        name and whether it has a limit key (remembered for the next time)."""
        known = self._checked.get(jt)
        return self._check_type(jt) if known is None else known

    def _check_type(self, jt: type[AnyJob]) -> tuple[Any, bool, str, bool]:
        """:meth:`_known` of a job type not checked yet."""
        self._registry.check_registered(jt)
        spec = jt.spec()
        known = (
            spec.input_type,
            spec.blockers.declared,
            jt.type_name,
            jt.limit_key_of is not None,
        )
        if len(self._checked) < _MAX_CHECKED_TYPES:
            self._checked[jt] = known
        return known

    def _check_blockers(self, job: AnyJob) -> list[str]:
        jt = type(job)
        slots = jt.spec().blockers
        chains = list(job.blockers)
        if not slots.declared:
            if chains:
                raise JobTypeValidationError(
                    "invalid_blockers", jt.type_name, "this type declares no blockers"
                )
            return []
        for index, chain in enumerate(chains):
            if not isinstance(chain, Chain):
                raise JobTypeValidationError(
                    "invalid_blockers",
                    jt.type_name,
                    f"blockers must be Chain objects, got {chain!r}",
                )
            check_id(self._ids, chain.id, argument=f"blockers[{index}]")
        if len(chains) < len(slots.fixed) or (
            slots.rest is None and len(chains) != len(slots.fixed)
        ):
            expected = f"{len(slots.fixed)}{' or more' if slots.rest is not None else ''}"
            raise JobTypeValidationError(
                "invalid_blockers",
                jt.type_name,
                f"expected {expected} blocker chains, got {len(chains)}",
            )
        for index, chain in enumerate(chains):
            allowed = slots.fixed[index] if index < len(slots.fixed) else slots.rest or ()
            if chain.type_name not in {a.type_name for a in allowed}:
                names = " | ".join(a.type_name for a in allowed)
                raise JobTypeValidationError(
                    "invalid_blockers",
                    jt.type_name,
                    f"blocker {index} must be a chain of {names}, got {chain.type_name!r}",
                )
        return [chain.id for chain in chains]

    # -- the views a start returns ---------------------------------------------------------------

    def started(
        self,
        jobs: Sequence[AnyJob],
        plans: Sequence[PlannedJob],
        created: Sequence[CreatedJob],
        stored: Callable[[StoredJob, bool, Any], Chain[Any]],
    ) -> list[Chain[Any]]:
        """The chains started with ``jobs`` (planned as ``plans``, written as ``created``), in
        order: what a read of each returns right after its start.

        A new chain's view is built from its plan, which holds what the store wrote (its id, type,
        priority, limit key and deduplication key, stored as given) and the caller's ``input`` (the
        value its stored JSON decodes to), and from the stored row only what the store chose: its
        status and times. A new job is open: not attempted, leased or closed. Every other field of
        the view is the same for every new chain of its type, copied from fields prepared once
        per type. A deduplicated start (an existing chain) or a row whose times cannot be read is
        the view ``stored`` builds from its row (:meth:`~queuert._mapping.Mapper.started`)."""
        views: list[Chain[Any]] = []
        append = views.append
        prepared = self._view_fields
        last_type: str | None = None  # the type of the last new chain, with its fields:
        job_fields: Callable[[], dict[str, Any]] = dict
        chain_fields: dict[str, Any] = {}
        for job, plan, (row, dedup) in zip(jobs, plans, created, strict=True):
            if dedup or row.unreadable is not None:
                append(stored(row, dedup, job.input))
                continue
            new = plan[0]
            type_name = new.type_name
            if type_name != last_type:
                of_type = prepared.get(type_name)
                if of_type is None:
                    of_type = self._prepare_view(type_name)
                job_fields, chain_fields = of_type
                last_type = type_name
            fields = job_fields()
            fields["id"] = fields["chain_id"] = new_id = new.id
            fields["status"] = row.status
            fields["input"] = job.input
            fields["created_at"] = row.created_at
            fields["scheduled_at"] = row.scheduled_at
            dedup_by = new.deduplication
            if dedup_by is not None:
                fields["deduplication_key"] = dedup_by.key
            priority = new.priority
            if priority:
                fields["priority"] = priority
            limit_key = new.limit_key
            if limit_key is not None:
                fields["limit_key"] = limit_key
            set_field(root := blank(Job), "__dict__", fields)
            fields = chain_fields.copy()
            fields["id"] = new_id
            fields["root"] = fields["tail"] = root
            set_field(chain := blank(Chain), "__dict__", fields)
            append(chain)
        return views

    def _prepare_view(self, type_name: str) -> tuple[Callable[[], dict[str, Any]], dict[str, Any]]:
        """The fields of a new chain of ``type_name`` that every one has, for its first job's view
        (``copy`` of them) and its chain's (remembered for the next time)."""
        job_fields = _VIEW_JOB_FIELDS.copy()
        job_fields["type_name"] = job_fields["chain_type_name"] = type_name
        chain_fields = _VIEW_CHAIN_FIELDS.copy()
        chain_fields["type_name"] = type_name
        prepared = (job_fields.copy, chain_fields)
        if len(self._view_fields) < _MAX_CHECKED_TYPES:
            self._view_fields[type_name] = prepared
        return prepared

    # -- writing -------------------------------------------------------------------------------

    async def start_alone(self, plans: Sequence[PlannedJob]) -> list[CreatedJob]:
        """Start the planned chains (none waits for blockers) without a caller's transaction: in
        the state adapter's own short one (one statement where it can, with the wake-ups in it
        where the state and notify adapters can); what they announce follows its commit. Per plan,
        the stored row and whether deduplication matched an existing chain instead."""
        publish = self._starts_publisher
        if publish is None:
            # a publisher, once found, is the answer for good (see Publishing.in_transaction)
            publish = self._starts_publisher = await self._publishing.for_starts()
        if (
            publish is not None
            and self._publishing.tracing is None
            and not self._listens_to_creation()
        ):
            # no events to build and the wake-ups sent with the rows: no hooks to fill and flush
            state = self._publishing_state
            assert state is not None
            rows = [plans[0].row] if len(plans) == 1 else [plan.row for plan in plans]
            created = await state.create_jobs_publishing(rows, _announced(rows), publish)
            if any(map(_DEDUPLICATED, created)):
                # then the state adapter published nothing: the new ones are announced now
                ready: dict[str, int] = {}
                scheduled: set[str] = set()
                _announce_created(created, ready, scheduled)
                if ready or scheduled:
                    self._publishing.publish_later(ready, scheduled, set(), set())
            return created
        own = TransactionHooks()
        bound: BoundTransaction[Any] = BoundTransaction(None, own)
        try:
            created = await self.write(plans, None, bound, publish)
        except BaseException:
            own.discard()
            raise
        await own.flush()
        return created

    def _listens_to_creation(self) -> bool:
        """Whether the observability adapter takes the creation events (else they are not built)."""
        listens = self._publishing.listens
        return any(map(listens, _CREATION_LEVELS))

    async def write(
        self,
        plans: Sequence[PlannedJob],
        continuation_of: StoredJob | None,
        bound: BoundTransaction[TxT],
        publish: NotifyInTransaction | None = None,
    ) -> list[CreatedJob]:
        """Create the planned rows and their blocker links in ``bound``; per plan, the stored row and
        whether deduplication matched an existing chain instead (in plan order).

        ``publish`` (only for chain starts without blockers, outside any transaction, with a state
        adapter that :class:`~queuert.state_publishing.SupportsCreatePublishing`): the state adapter
        publishes the wake-ups of the new chains in the transaction that creates them, through it;
        the hooks then buffer only the events."""
        if not plans:
            return []
        hooks = bound.hooks
        tx = bound.tx
        tracing = self._publishing.tracing
        new_jobs: Sequence[NewJob]
        blockers: Sequence[list[str]]
        new_jobs, blockers = zip(*plans, strict=True)
        # taken before the first buffering (after every await): a failure from then on drops
        # what this write buffered, and only that
        restore: Callable[[], None] | None = None
        link_contexts: dict[int, list[str | None]] = {}
        try:
            if publish is None:
                created = await self._state.create_jobs(new_jobs, tx=tx)
            else:
                state = self._publishing_state
                assert tx is None and state is not None
                created = await state.create_jobs_publishing(
                    new_jobs, _announced(new_jobs), publish
                )
            results = list(created)
            # the state adapter published them unless a job was deduplicated
            announce = publish is None or any(map(_DEDUPLICATED, results))
            linked = (
                [i for i, (_, dedup) in enumerate(results) if blockers[i] and not dedup]
                if any(blockers)
                else None
            )
            opened: dict[int, set[str]] = {}
            blocker_chains: dict[int, list[str | None]] = {}
            if linked:
                links: list[tuple[str, Sequence[str]]] = [
                    (results[i][0].id, blockers[i]) for i in linked
                ]
                if tracing is not None:
                    link_contexts = {
                        i: _blocker_contexts(tracing, results[i][0].trace_context, blockers[i])
                        for i in linked
                    }
                added = await self._state.add_blockers(
                    links,
                    trace_contexts=[link_contexts[i] for i in linked] if link_contexts else None,
                    tx=tx,
                )
                for i, one in zip(linked, added, strict=True):
                    results[i] = CreatedJob(one.job, False)
                    opened[i] = set(one.open_blocker_chain_ids)
                    blocker_chains[i] = one.blocker_chain_trace_contexts
            if tracing is None and not self._listens_to_creation():
                # nobody takes the creation events: only the wake-ups (none left to buffer when
                # the state adapter published them)
                if announce:
                    restore = hooks.checkpoint()
                    notify = self._publishing.notify_buffer(hooks)
                    _announce_created(results, notify.ready, notify.scheduled)
                return results
            restore = hooks.checkpoint()
            notify = self._publishing.notify_buffer(hooks)
            events = self._publishing.event_buffer(hooks).events
            origin = _origin(continuation_of)
            for i, (row, dedup) in enumerate(results):
                if dedup:
                    if continuation_of is None:
                        planned = new_jobs[i]
                        events.append(
                            ChainDeduplicated(
                                row.chain_id,
                                row.chain_type_name,
                                row.deduplication_key,
                                planned.chain_trace_context,
                                planned.trace_context,
                                row.chain_trace_context,
                            )
                        )
                    elif tracing is not None:
                        self.abandon([plans[i]])
                    continue
                info = JobInfo(
                    row.id,
                    row.type_name,
                    row.chain_id,
                    row.chain_type_name,
                    row.attempt,
                    row.chain_trace_context,
                    row.trace_context,
                )
                if continuation_of is None:
                    events.append(ChainCreated(row.id, row.type_name, row.chain_trace_context))
                if blockers[i]:
                    contexts = link_contexts.get(i) or [None] * len(blockers[i])
                    is_open = opened.get(i, set())
                    chain_contexts = blocker_chains.get(i) or [None] * len(blockers[i])
                    links_of = tuple(
                        BlockerLink(chain_id, context, chain_id in is_open, chain_context)
                        for chain_id, context, chain_context in zip(
                            blockers[i], contexts, chain_contexts, strict=True
                        )
                    )
                    events.append(
                        JobCreated(
                            info,
                            row.scheduled_at,
                            row.blocked,
                            origin,
                            links_of,
                        )
                    )
                else:
                    events.append(JobCreated(info, row.scheduled_at, row.blocked, origin))
                if row.blocked:
                    events.append(JobBlocked(info, tuple(blockers[i])))
                elif announce:
                    _announce(notify.ready, notify.scheduled, row.type_name, _due(row))
            return results
        except BaseException:
            if restore is not None:
                restore()
            if tracing is not None:
                self.abandon(plans)
                self._publishing.abandon(
                    [c for cs in link_contexts.values() for c in cs if c is not None]
                )
            raise


_INPUT = attrgetter("input")
_SCHEDULE = attrgetter("schedule")
_TYPE_NAME = attrgetter("type_name")

_DEDUPLICATED = itemgetter(1)
"""A :class:`~queuert.state.CreatedJob`'s ``deduplicated`` (in C: no call per job)."""

_START_FIELDS: dict[str, Any] = {
    "id": None,
    "type_name": None,
    "chain_type_name": None,
    "input": None,
    "chain_id": None,
    "chain_index": 0,
    "schedule": None,
    "deduplication": None,
    "chain_trace_context": None,
    "trace_context": None,
    "fresh_id": True,
    "priority": 0,
    "limit_key": None,
    "input_text": None,
}
"""The fields of a planned chain start, in :class:`~queuert.state.NewJob`'s declaration order:
what every start without a caller's id, schedule, deduplication, priority or limit key holds (each
plan fills in its own)."""

_VIEW_JOB_FIELDS: dict[str, Any] = {f.name: None for f in dataclasses.fields(Job)}
_VIEW_JOB_FIELDS.update(attempt=0, priority=0)
"""A new job's view (:class:`~queuert.models.Job`'s fields in declaration order): not attempted,
leased or closed, without output, readable, of priority 0; the rest filled in per type and per
job."""

_VIEW_CHAIN_FIELDS: dict[str, Any] = {f.name: None for f in dataclasses.fields(Chain)}
_VIEW_CHAIN_FIELDS.update(status="open", deduplicated=False)
"""A new chain's view (:class:`~queuert.models.Chain`'s fields in declaration order): open, without
outcome or output, not deduplicated; the rest filled in per type and per chain."""

_MAX_CHECKED_TYPES = 1024
"""How many job types a :class:`ChainCreation` remembers as checked (types made on the fly are
checked every time past that)."""

_CREATION_LEVELS = tuple(
    sorted({ChainCreated.level, ChainDeduplicated.level, JobCreated.level, JobBlocked.level})
)
"""The logging levels of the events a creation emits."""


def _announce(
    ready: MutableMapping[str, int],
    scheduled: set[str],
    type_name: str,
    due_now: bool,
    count: int = 1,
) -> None:
    """What a new job that is not blocked announces once committed: a wake-up if it is due now,
    else a job-scheduled message for its type. The one place this rule lives: the hooks' buffer
    after a write (:func:`_due` of the stored row) and the wake-ups a state adapter publishes with
    the write itself (:func:`_announced`, before the rows exist) both come from here
    (``count`` such jobs of the type at once)."""
    if due_now:
        ready[type_name] = ready.get(type_name, 0) + count
    else:
        scheduled.add(type_name)


def _announce_created(
    created: Sequence[CreatedJob], ready: MutableMapping[str, int], scheduled: set[str]
) -> None:
    """What the jobs just created announce once committed (a deduplicated or blocked one
    nothing)."""
    for row, dedup in created:
        if not dedup and not row.blocked:
            _announce(ready, scheduled, row.type_name, _due(row))


def _due(row: StoredJob) -> bool:
    """Whether a stored new job is due now (ready, not scheduled for later)."""
    return row.status == "ready"


def _announced(rows: Sequence[NewJob]) -> Notifications:
    """What new chains without blockers announce once created, decided before they are written:
    a job without a schedule is due now; one with a schedule, even a past one, counts as later
    (its type's job-scheduled message)."""
    if len(rows) == 1 and rows[0].schedule is None:
        # one start due now (a loop of start_chain calls): the same answer for every one of its
        # type, made once
        type_name = rows[0].type_name
        one = _ONE_READY.get(type_name)
        if one is not None:
            return one
    ready: dict[str, int] = {}
    scheduled: set[str] = set()
    if len(rows) > 1 and list(map(_SCHEDULE, rows)).count(None) == len(rows):
        # a batch due now: its jobs counted per type in C, announced per type
        for type_name, count in Counter(map(_TYPE_NAME, rows)).items():
            _announce(ready, scheduled, type_name, True, count)
    else:
        for row in rows:
            _announce(ready, scheduled, row.type_name, row.schedule is None)
    notifications = Notifications(ready, frozenset(scheduled) if scheduled else _NONE, _NONE, _NONE)
    if len(rows) == 1 and not scheduled and len(_ONE_READY) < _MAX_CHECKED_TYPES:
        _ONE_READY[type_name] = Notifications(MappingProxyType(ready), _NONE, _NONE, _NONE)
    return notifications


_NONE: frozenset[str] = frozenset()
_ONE_READY: dict[str, Notifications] = {}
"""Per job type, what one new chain of it due now announces (read-only: shared by every start)."""


def _limit_key(job: AnyJob) -> str | None:
    """The key the job's type limits by (its ``limit_key`` of the job's input), if it has one."""
    jt = type(job)
    key_of = jt.limit_key_of
    return None if key_of is None else check_limit_key(key_of(job.input), jt.type_name)


def _origin(continuation_of: StoredJob | None) -> str | None:
    return None if continuation_of is None else continuation_of.trace_context


def _with_contexts(
    tracing: TraceContexts, row: NewJob, continuation_of: StoredJob | None
) -> NewJob:
    """``row`` with the chain's and the job's trace contexts (a new chain's from the adapter)."""
    if continuation_of is None:
        chain_context = _text(_call(tracing.start_chain, row.chain_type_name))
        origin = None
    else:
        chain_context = continuation_of.chain_trace_context
        origin = continuation_of.trace_context
    job_context = _text(
        _call(tracing.start_job, row.type_name, row.chain_type_name, chain_context, origin)
    )
    return replace(row, chain_trace_context=chain_context, trace_context=job_context)


def _blocker_contexts(
    tracing: TraceContexts, trace_context: str | None, chain_ids: Sequence[str]
) -> list[str | None]:
    contexts = _call(tracing.start_blockers, trace_context, chain_ids)
    if not isinstance(contexts, list) or len(contexts) != len(chain_ids):
        return [None] * len(chain_ids)
    return [c if isinstance(c, str) else None for c in contexts]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """A tracing adapter's answer, or ``None`` if it raised (logged) or is not text or a list."""
    try:
        return fn(*args)
    except Exception:
        logger.exception("observability adapter failed to start a trace context")
        return None
