"""Model-based test: random client and worker actions against the adapter and a pure-Python model.

The model below is a deliberately small, independent description of the job model (it is not the
in-memory adapter): jobs with an outcome, a successor, a lease, a "scheduled in the future" flag and
blocker chains; chain status from the tail; status derived in the documented order. A hypothesis
``RuleBasedStateMachine`` drives random sequences of actions named after what clients and workers do,
applies each to both, checks each action's result, and compares everything observable after every step.

Hypothesis is synchronous while adapters are asyncio objects bound to the test's event loop, so the
state machine runs in a worker thread and submits every adapter call to the test's loop.

Each example works under its own job type names, so examples share the harness's store without seeing
each other. Times are never compared: schedules are "now" or an hour ahead, leases are long or already
expired (zero length), so every status is predictable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from queuert.json import JsonValue
from queuert.schedule import Deduplication, DeduplicationScope, Schedule
from queuert.state import (
    ChainFilter,
    Completion,
    JobFilter,
    NewJob,
    Outcome,
    StateAdapter,
    StoredJob,
)

from queuert_conformance.harness import StateHarness

__all__ = ["TestStateModel"]

T = TypeVar("T")

HOUR = timedelta(hours=1)
EXPIRED = timedelta(0)
WORKERS = ("worker-1", "worker-2")
KEYS = ("key-1", "key-2")
STEP_TIMEOUT = 60.0

EXAMPLES = int(os.environ.get("QUEUERT_CONFORMANCE_MODEL_EXAMPLES", "60"))
STEPS = int(os.environ.get("QUEUERT_CONFORMANCE_MODEL_STEPS", "30"))
PHASES = list(Phase)
SHRINK = os.environ.get("QUEUERT_CONFORMANCE_MODEL_SHRINK", "") not in ("", "0")
"""Shrinking a failure to a minimal example can take minutes, so it is opt-in."""

small_json: st.SearchStrategy[JsonValue] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.text(max_size=4),
    st.lists(st.integers(0, 9), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 9), max_size=2),
)


# -- the model --------------------------------------------------------------------------------------


@dataclass
class MJob:
    id: str
    type_name: str
    chain_id: str
    chain_index: int
    input: JsonValue
    dedup_key: str | None = None
    outcome: Outcome | None = None
    successor: str | None = None
    output: JsonValue = None
    completed_by: str | None = None
    leased_by: str | None = None
    lease_expired: bool = False
    future: bool = False
    attempt: int = 0
    last_error: str | None = None
    blockers: list[str] = field(default_factory=list)


class Model:
    def __init__(self) -> None:
        self.jobs: dict[str, MJob] = {}
        self.chains: list[str] = []
        """Chain ids in creation order."""

    def members(self, chain_id: str) -> list[MJob]:
        return sorted(
            (j for j in self.jobs.values() if j.chain_id == chain_id), key=lambda j: j.chain_index
        )

    def tail(self, chain_id: str) -> MJob:
        return self.members(chain_id)[-1]

    def chain_open(self, chain_id: str) -> bool:
        tail = self.tail(chain_id)
        return tail.outcome is None or tail.successor is not None

    def blocked(self, job: MJob) -> bool:
        return any(self.chain_open(c) for c in job.blockers if c in self.chains)

    def status(self, job: MJob) -> str:
        if job.outcome is not None:
            return "continued" if job.successor is not None else job.outcome
        if job.leased_by is not None:
            return "running"
        if self.blocked(job):
            return "blocked"
        if job.future:
            return "scheduled"
        return "ready"

    def open_jobs(self) -> list[MJob]:
        return [j for j in self.jobs.values() if j.outcome is None]

    def dependents(self, chain_id: str) -> list[MJob]:
        return [j for j in self.jobs.values() if chain_id in j.blockers]

    def find_duplicate(self, chain_type: str, dedup: Deduplication) -> str | None:
        best = None
        for chain_id in self.chains:
            root = self.jobs[chain_id]
            if root.type_name != chain_type or root.dedup_key != dedup.key:
                continue
            if chain_id in dedup.exclude_chain_ids:
                continue
            if dedup.scope == "open" and not self.chain_open(chain_id):
                continue
            best = chain_id  # later in creation order = newer
        return best

    def close(
        self,
        job: MJob,
        outcome: Outcome,
        *,
        output: JsonValue = None,
        worker_id: str | None = None,
        successor: str | None = None,
        error: str | None = None,
    ) -> set[str]:
        """Close ``job``; returns the ids of the jobs this releases."""
        waiting = {
            j.id for j in self.dependents(job.chain_id) if j.outcome is None and self.blocked(j)
        }
        job.outcome = outcome
        job.successor = successor
        job.output = output if outcome == "completed" and successor is None else None
        job.completed_by = worker_id
        job.leased_by = None
        job.lease_expired = False
        if outcome == "completed":
            job.last_error = None
        elif error is not None:
            job.last_error = error
        if self.chain_open(job.chain_id):
            return set()
        return {j for j in waiting if not self.blocked(self.jobs[j])}

    def delete_closure(self, chain_ids: Sequence[str], cascade: bool) -> list[str]:
        targets = [c for c in dict.fromkeys(chain_ids) if c in self.chains]
        if cascade:
            queue = list(targets)
            while queue:
                chain_id = queue.pop()
                for job in self.members(chain_id):
                    for blocker in job.blockers:
                        if blocker in self.chains and blocker not in targets:
                            targets.append(blocker)
                            queue.append(blocker)
        return targets

    def references(self, targets: Sequence[str]) -> set[tuple[str, str]]:
        inside = set(targets)
        return {(c, j.id) for c in targets for j in self.dependents(c) if j.chain_id not in inside}

    def delete(self, targets: Sequence[str]) -> None:
        inside = set(targets)
        for job_id in [j.id for j in self.jobs.values() if j.chain_id in inside]:
            del self.jobs[job_id]
        self.chains = [c for c in self.chains if c not in inside]


# -- the machine --------------------------------------------------------------------------------------


class StateModelMachine(RuleBasedStateMachine):
    """Client and worker actions, applied to the adapter and to :class:`Model`."""

    def __init__(
        self, adapter: StateAdapter[Any], loop: asyncio.AbstractEventLoop, savepoints: bool
    ) -> None:
        super().__init__()
        self.adapter = adapter
        self.loop = loop
        self.savepoints = savepoints
        prefix = f"model-{uuid.uuid4().hex[:10]}"
        self.types = (f"{prefix}.one", f"{prefix}.two")
        self.model = Model()
        self.errors = 0

    # -- plumbing -----------------------------------------------------------------------------------

    def new_id(self) -> str:
        """A new id from the adapter's policy (for a job to create, or as an id no job has)."""
        return self.adapter.ids.generate()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(STEP_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise AssertionError(f"an adapter call hung for {STEP_TIMEOUT:g}s") from None

    def next_error(self) -> str:
        self.errors += 1
        return f"error-{self.errors}"

    def has_open(self) -> bool:
        return bool(self.model.open_jobs())

    def has_running(self) -> bool:
        return any(j.leased_by is not None for j in self.model.open_jobs())

    def has_jobs(self) -> bool:
        return bool(self.model.jobs)

    def pick_blockers(self, data: st.DataObject, exclude: str | None = None) -> list[str]:
        candidates = [c for c in self.model.chains if c != exclude]
        if not candidates:
            return []
        return data.draw(
            st.lists(st.sampled_from(candidates), max_size=2, unique=True), label="blockers"
        )

    def add_model_job(self, new: NewJob, blockers: list[str]) -> MJob:
        job = MJob(
            id=new.id,
            type_name=new.type_name,
            chain_id=new.chain_id or new.id,
            chain_index=new.chain_index,
            input=new.input,
            dedup_key=new.deduplication.key if new.deduplication else None,
            future=new.schedule is not None,
            blockers=list(blockers),
        )
        self.model.jobs[job.id] = job
        if new.chain_id is None:
            self.model.chains.append(job.id)
        return job

    def release(self, predicted: set[str], unblocked: list[StoredJob], what: str) -> None:
        got = {j.id for j in unblocked}
        assert got == predicted, (
            f"{what}: released {sorted(got)}, the model releases {sorted(predicted)}"
        )
        for job in unblocked:
            expected = self.model.status(self.model.jobs[job.id])
            assert job.status == expected, (
                f"{what}: released job {job.id} is {job.status!r}, the model says {expected!r}"
            )

    # -- client actions -----------------------------------------------------------------------------

    @rule(data=st.data())
    def start_chains(self, data: st.DataObject) -> None:
        """A client starts one to three chains in one transaction (dedup, schedule, blockers)."""
        items: list[tuple[NewJob, list[str]]] = []
        for _ in range(data.draw(st.integers(1, 3), label="batch size")):
            type_name = data.draw(st.sampled_from(self.types), label="type")
            dedup = None
            if data.draw(st.booleans(), label="deduplicate"):
                scope: DeduplicationScope = data.draw(st.sampled_from(["open", "any"]))
                exclude: list[str] = []
                if self.model.chains:
                    excluding = data.draw(st.booleans(), label="exclude a chain")
                    if excluding:
                        exclude = [data.draw(st.sampled_from(self.model.chains))]
                dedup = Deduplication(
                    data.draw(st.sampled_from(KEYS), label="key"),
                    scope=scope,
                    exclude_chain_ids=exclude,
                )
            schedule = Schedule(after=HOUR) if data.draw(st.booleans(), label="later") else None
            new = NewJob(
                id=self.new_id(),
                type_name=type_name,
                chain_type_name=type_name,
                input=data.draw(small_json, label="input"),
                schedule=schedule,
                deduplication=dedup,
            )
            items.append((new, self.pick_blockers(data)))

        # the model's prediction, item by item
        expected: list[str | None] = []  # None: inserted
        first_of_key: dict[tuple[str, str], str] = {}
        for new, blockers in items:
            hit = None
            if new.deduplication is not None:
                key = (new.chain_type_name, new.deduplication.key)
                hit = first_of_key.get(key) or self.model.find_duplicate(
                    new.chain_type_name, new.deduplication
                )
                first_of_key[key] = hit or new.id
            expected.append(hit)
            if hit is None:
                self.add_model_job(new, blockers)

        async def act() -> list[Any]:
            async with self.adapter.transaction() as tx:
                created = await self.adapter.create_jobs([new for new, _ in items], tx=tx)
                links = [
                    (c.job.id, blockers)
                    for c, (_, blockers) in zip(created, items, strict=True)
                    if not c.deduplicated and blockers
                ]
                if links:
                    await self.adapter.add_blockers(links, tx=tx)
                return created

        created = self.run(act())
        for (new, _), result, hit in zip(items, created, expected, strict=True):
            if hit is None:
                assert not result.deduplicated and result.job.id == new.id, (
                    f"start of {new.id} ({new.deduplication}): the model inserts it, the adapter "
                    f"returned {result.job.id} deduplicated={result.deduplicated}"
                )
            else:
                assert result.deduplicated and result.job.id == hit, (
                    f"start of {new.id} ({new.deduplication}): the model deduplicates to {hit}, the "
                    f"adapter returned {result.job.id} deduplicated={result.deduplicated}"
                )

    @rule(data=st.data())
    @precondition(lambda self: self.has_open())
    def complete_chain_workerless(self, data: st.DataObject) -> None:
        """Code outside any worker completes a chain's current job with an output."""
        job = data.draw(st.sampled_from(self.model.open_jobs()), label="job")
        output = data.draw(small_json, label="output")
        predicted = self.model.close(job, "completed", output=output)
        result = self.run(self.close(job.id, "completed", output=output))
        self.release(predicted, result.unblocked, f"completing {job.id}")

    @rule(data=st.data())
    @precondition(lambda self: self.has_open())
    def cancel_chain(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self.model.open_jobs()), label="job")
        predicted = self.model.close(job, "cancelled")
        result = self.run(self.close(job.id, "cancelled"))
        self.release(predicted, result.unblocked, f"cancelling {job.id}")

    @rule(data=st.data())
    @precondition(lambda self: self.has_jobs())
    def trigger_jobs(self, data: st.DataObject) -> None:
        chosen = data.draw(
            st.lists(st.sampled_from(sorted(self.model.jobs)), min_size=1, max_size=3, unique=True),
            label="jobs",
        )
        if data.draw(st.booleans(), label="with a missing id"):
            chosen.append(self.new_id())
        not_found = [i for i in chosen if i not in self.model.jobs]
        refused = [
            (i, self.model.status(self.model.jobs[i]))
            for i in chosen
            if i in self.model.jobs
            and self.model.status(self.model.jobs[i]) not in ("scheduled", "ready")
        ]
        result = self.run(self.adapter.trigger_jobs(chosen))
        assert result.not_found == not_found, f"trigger {chosen}: not_found {result.not_found}"
        assert sorted(result.not_triggerable) == sorted(refused), (
            f"trigger {chosen}: not_triggerable {result.not_triggerable}, model {refused}"
        )
        if not_found or refused:
            assert result.triggered == [], "trigger_jobs is all or nothing"
            return
        assert [j.id for j in result.triggered] == chosen
        for job_id in chosen:
            self.model.jobs[job_id].future = False

    @rule(data=st.data())
    @precondition(lambda self: bool(self.model.chains))
    def delete_chains(self, data: st.DataObject) -> None:
        chosen = data.draw(
            st.lists(st.sampled_from(self.model.chains), min_size=1, max_size=2, unique=True),
            label="chains",
        )
        cascade = data.draw(st.booleans(), label="cascade")
        targets = self.model.delete_closure(chosen, cascade)
        references = self.model.references(targets)
        result = self.run(self.adapter.delete_chains(chosen, cascade=cascade))
        got_refs = {(r.chain_id, r.referenced_by_job_id) for r in result.references}
        assert got_refs == references, (
            f"delete {chosen} cascade={cascade}: references {sorted(got_refs)}, "
            f"model {sorted(references)}"
        )
        if references:
            assert result.deleted == [], "nothing is deleted when references exist"
            return
        got = sorted(c.id for c in result.deleted)
        assert got == sorted(targets), f"delete {chosen} cascade={cascade}: deleted {got}"
        self.model.delete(targets)

    @rule(data=st.data())
    def rolled_back_transaction(self, data: st.DataObject) -> None:
        """A client transaction that does several things and then fails: nothing may remain."""
        open_jobs = self.model.open_jobs()
        victim = data.draw(st.sampled_from(open_jobs)).id if open_jobs else None

        class Abort(Exception):
            pass

        async def act() -> None:
            try:
                async with self.adapter.transaction() as tx:
                    new = NewJob(
                        id=self.new_id(),
                        type_name=self.types[0],
                        chain_type_name=self.types[0],
                        input=1,
                    )
                    await self.adapter.create_jobs([new], tx=tx)
                    await self.adapter.claim_jobs(
                        leases=dict.fromkeys(self.types, HOUR), limit=2, worker_id=WORKERS[0], tx=tx
                    )
                    if victim is not None:
                        await self.adapter.get_job(victim, lock=True, tx=tx)
                        await self.adapter.complete_job(
                            victim, outcome="cancelled", worker_id=None, tx=tx
                        )
                    raise Abort()
            except Abort:
                pass

        self.run(act())

    @rule(data=st.data())
    @precondition(lambda self: self.savepoints)
    def start_chain_after_a_failed_savepoint(self, data: st.DataObject) -> None:
        """A transaction whose savepoint fails (rolled back) and that then starts a chain."""
        open_jobs = self.model.open_jobs()
        victim = data.draw(st.sampled_from(open_jobs)).id if open_jobs else None
        type_name = data.draw(st.sampled_from(self.types))
        new = NewJob(id=self.new_id(), type_name=type_name, chain_type_name=type_name, input="kept")

        class Abort(Exception):
            pass

        async def act() -> None:
            async with self.adapter.transaction() as tx:
                try:
                    async with self.adapter.savepoint(tx) as sp:
                        lost = NewJob(
                            id=self.new_id(),
                            type_name=type_name,
                            chain_type_name=type_name,
                            input=0,
                        )
                        await self.adapter.create_jobs([lost], tx=sp)
                        if victim is not None:
                            await self.adapter.get_job(victim, lock=True, tx=sp)
                            await self.adapter.complete_job(
                                victim, outcome="completed", worker_id=None, output=0, tx=sp
                            )
                        raise Abort()
                except Abort:
                    pass
                await self.adapter.create_jobs([new], tx=tx)

        self.run(act())
        self.add_model_job(new, [])

    # -- worker actions -----------------------------------------------------------------------------

    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        worker = data.draw(st.sampled_from(WORKERS), label="worker")
        types = data.draw(
            st.lists(st.sampled_from(self.types), min_size=1, unique=True), label="types"
        )
        limit = data.draw(st.integers(1, 3), label="limit")
        expired = data.draw(st.booleans(), label="zero-length lease")
        ready = {
            j.id
            for j in self.model.open_jobs()
            if j.type_name in types and self.model.status(j) == "ready"
        }
        result = self.run(
            self.adapter.claim_jobs(
                leases=dict.fromkeys(types, EXPIRED if expired else HOUR),
                limit=limit,
                worker_id=worker,
            )
        )
        got = [j.id for j in result.jobs]
        assert len(set(got)) == len(got), f"claim returned a job twice: {got}"
        assert set(got) <= ready, (
            f"claimed {sorted(set(got) - ready)}, which the model says are not ready"
        )
        assert len(got) == min(limit, len(ready)), (
            f"claimed {len(got)} of {len(ready)} ready jobs with limit {limit}"
        )
        assert result.has_more == (len(ready) > limit), (
            f"has_more={result.has_more} with {len(ready)} ready jobs and limit {limit}"
        )
        for stored in result.jobs:
            job = self.model.jobs[stored.id]
            job.attempt += 1
            job.leased_by = worker
            job.lease_expired = expired
            assert stored.attempt == job.attempt and stored.status == "running"

    @rule(data=st.data())
    @precondition(lambda self: self.has_running())
    def complete_attempt(self, data: st.DataObject) -> None:
        """The worker holding a job completes it with an output."""
        running = [j for j in self.model.open_jobs() if j.leased_by is not None]
        job = data.draw(st.sampled_from(running), label="job")
        output = data.draw(small_json, label="output")
        worker = job.leased_by
        predicted = self.model.close(job, "completed", output=output, worker_id=worker)
        result = self.run(self.close(job.id, "completed", output=output, worker_id=worker))
        self.release(predicted, result.unblocked, f"completing {job.id}")

    @rule(data=st.data())
    @precondition(lambda self: self.has_jobs())
    def complete_attempts_together(self, data: st.DataObject) -> None:
        """A worker group-commits several completions, guarded by its lease (others are skipped)."""
        worker = data.draw(st.sampled_from(WORKERS), label="worker")
        chosen = data.draw(
            st.lists(st.sampled_from(sorted(self.model.jobs)), min_size=1, max_size=3, unique=True),
            label="jobs",
        )
        completions = []
        for job_id in chosen:
            outcome: Outcome = data.draw(st.sampled_from(["completed", "failed"]), label="outcome")
            completions.append(
                Completion(
                    job_id,
                    outcome=outcome,
                    output=data.draw(small_json, label="output")
                    if outcome == "completed"
                    else None,
                    error=self.next_error() if outcome == "failed" else None,
                )
            )
        predicted: list[set[str] | None] = []
        for completion in completions:
            job = self.model.jobs[completion.job_id]
            if job.outcome is not None or job.leased_by != worker:
                predicted.append(None)
                continue
            predicted.append(
                self.model.close(
                    job,
                    completion.outcome,
                    output=completion.output,
                    worker_id=worker,
                    error=completion.error,
                )
            )
        results = self.run(self.adapter.complete_jobs(completions, worker_id=worker, owner=worker))
        assert len(results) == len(completions), "complete_jobs returns one result per completion"
        for completion, result, released in zip(completions, results, predicted, strict=True):
            if released is None:
                assert result is None, (
                    f"complete_jobs closed {completion.job_id}, which {worker} does not hold"
                )
                continue
            assert result is not None and result.job.id == completion.job_id, (
                f"complete_jobs skipped {completion.job_id}, which {worker} holds"
            )
            self.release(released, result.unblocked, f"group-completing {completion.job_id}")

    @rule(data=st.data())
    @precondition(lambda self: self.has_open())
    def continue_chain(self, data: st.DataObject) -> None:
        """A job continues its chain with a next job (maybe scheduled, maybe waiting for chains)."""
        job = data.draw(st.sampled_from(self.model.open_jobs()), label="job")
        type_name = data.draw(st.sampled_from(self.types), label="type")
        schedule = Schedule(after=HOUR) if data.draw(st.booleans(), label="later") else None
        blockers = self.pick_blockers(data, exclude=job.chain_id)
        worker = job.leased_by
        root = self.model.jobs[job.chain_id]
        new = NewJob(
            id=self.new_id(),
            type_name=type_name,
            chain_type_name=root.type_name,
            input=data.draw(small_json, label="input"),
            chain_id=job.chain_id,
            chain_index=job.chain_index + 1,
            schedule=schedule,
        )

        async def act() -> Any:
            async with self.adapter.transaction() as tx:
                await self.adapter.get_job(job.id, lock=True, tx=tx)
                (created,) = await self.adapter.create_jobs([new], tx=tx)
                assert not created.deduplicated, "a new continuation was deduplicated"
                if blockers:
                    await self.adapter.add_blockers([(new.id, blockers)], tx=tx)
                return await self.adapter.complete_job(
                    job.id,
                    outcome="completed",
                    worker_id=worker,
                    succeeded_by_job_id=new.id,
                    tx=tx,
                )

        result = self.run(act())
        self.add_model_job(new, blockers)
        self.model.close(job, "completed", worker_id=worker, successor=new.id)
        assert result.unblocked == [], "continuing a chain released jobs"

    @rule(data=st.data())
    @precondition(lambda self: self.has_running())
    def fail_attempt(self, data: st.DataObject) -> None:
        """The worker gives up on a job (max attempts): the chain closes as failed."""
        running = [j for j in self.model.open_jobs() if j.leased_by is not None]
        job = data.draw(st.sampled_from(running), label="job")
        error = self.next_error()
        worker = job.leased_by
        predicted = self.model.close(job, "failed", worker_id=worker, error=error)
        result = self.run(self.close(job.id, "failed", worker_id=worker, error=error))
        self.release(predicted, result.unblocked, f"failing {job.id}")

    @rule(data=st.data())
    @precondition(lambda self: self.has_running())
    def retry_attempt_later(self, data: st.DataObject) -> None:
        """An attempt failed: the worker reschedules the job (now or later, error or not)."""
        running = [j for j in self.model.open_jobs() if j.leased_by is not None]
        job = data.draw(st.sampled_from(running), label="job")
        later = data.draw(st.booleans(), label="later")
        error = self.next_error() if data.draw(st.booleans(), label="with error") else None
        stored = self.run(
            self.adapter.reschedule_job(
                job.id, schedule=Schedule(after=HOUR) if later else None, error=error
            )
        )
        job.leased_by = None
        job.lease_expired = False
        job.future = later
        if error is not None:
            job.last_error = error
        expected = self.model.status(job)
        assert stored.status == expected, f"rescheduled {job.id}: {stored.status} != {expected}"

    @rule(data=st.data())
    def renew_leases(self, data: st.DataObject) -> None:
        worker = data.draw(st.sampled_from(WORKERS), label="worker")
        candidates = sorted(self.model.jobs)
        chosen = (
            data.draw(st.lists(st.sampled_from(candidates), max_size=3, unique=True))
            if candidates
            else []
        )
        expired = data.draw(st.booleans(), label="zero-length lease")
        if not chosen:
            return
        held = {
            i
            for i in chosen
            if self.model.jobs[i].outcome is None and self.model.jobs[i].leased_by == worker
        }
        renewal = self.run(
            self.adapter.renew_leases(
                dict.fromkeys(chosen, EXPIRED if expired else HOUR), worker_id=worker
            )
        )
        assert set(renewal.renewed) == held, (
            f"{worker} renewed {sorted(renewal.renewed)}, the model holds {sorted(held)}"
        )
        assert set(renewal.lost) == set(chosen) - held
        for job_id in held:
            self.model.jobs[job_id].lease_expired = expired

    @rule(data=st.data())
    def reap(self, data: st.DataObject) -> None:
        types = data.draw(st.lists(st.sampled_from(self.types), min_size=1, unique=True))
        expected = {
            j.id: j.leased_by
            for j in self.model.open_jobs()
            if j.type_name in types and j.leased_by is not None and j.lease_expired
        }
        reaped = self.run(self.adapter.reap_expired_leases(types, limit=1000))
        got = {j.id: j.leased_by for j in reaped}
        assert got == expected, f"reaped {got}, the model expects {expected}"
        for job_id in expected:
            self.model.jobs[job_id].leased_by = None
            self.model.jobs[job_id].lease_expired = False

    # -- comparison ---------------------------------------------------------------------------------

    async def close(
        self,
        job_id: str,
        outcome: Outcome,
        *,
        output: JsonValue = None,
        worker_id: str | None = None,
        error: str | None = None,
    ) -> Any:
        async with self.adapter.transaction() as tx:
            await self.adapter.get_job(job_id, lock=True, tx=tx)
            return await self.adapter.complete_job(
                job_id, outcome=outcome, worker_id=worker_id, output=output, error=error, tx=tx
            )

    async def observe(
        self,
    ) -> tuple[list[StoredJob], list[Any], dict[str, list[str]], dict[str, Any], list[Any]]:
        jobs: list[StoredJob] = []
        cursor = None
        while True:
            page = await self.adapter.list_jobs(
                JobFilter(type_names=list(self.types)), order="asc", cursor=cursor, limit=200
            )
            jobs.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        chains: list[Any] = []
        cursor = None
        while True:
            chain_page = await self.adapter.list_chains(
                ChainFilter(type_names=list(self.types)), order="asc", cursor=cursor, limit=200
            )
            chains.extend(chain_page.items)
            cursor = chain_page.next_cursor
            if cursor is None:
                break
        blockers = {
            j.id: [c.id for c in await self.adapter.get_job_blockers(j.id)]
            for j in self.model.jobs.values()
            if j.blockers
        }
        due = {t: await self.adapter.next_due([t]) for t in self.types}
        stats = await self.adapter.get_queue_stats(list(self.types))
        return jobs, chains, blockers, due, stats

    @invariant()
    def adapter_matches_model(self) -> None:
        jobs, chains, blockers, due, stats = self.run(self.observe())
        model = self.model
        problems: list[str] = []
        stored = {j.id: j for j in jobs}
        if set(stored) != set(model.jobs):
            problems.append(
                f"job ids differ: only in adapter {sorted(set(stored) - set(model.jobs))}, "
                f"only in model {sorted(set(model.jobs) - set(stored))}"
            )
        for job_id, m in model.jobs.items():
            s = stored.get(job_id)
            if s is None:
                continue
            expected = {
                "status": model.status(m),
                "outcome": m.outcome,
                "succeeded_by_job_id": m.successor,
                "output": m.output,
                "input": m.input,
                "attempt": m.attempt,
                "leased_by": m.leased_by,
                "last_attempt_error": m.last_error,
                "chain_id": m.chain_id,
                "chain_index": m.chain_index,
                "type_name": m.type_name,
                "deduplication_key": m.dedup_key,
            }
            if m.outcome is not None:
                expected["completed_by"] = m.completed_by
            else:
                expected["blocked"] = model.blocked(m)
            for name, value in expected.items():
                if getattr(s, name) != value:
                    problems.append(
                        f"job {job_id}: {name} is {getattr(s, name)!r}, the model says {value!r}"
                    )
        chain_status = {c.id: (c.status, c.tail.id) for c in chains}
        expected_chains = {
            c: ("open" if model.chain_open(c) else "closed", model.tail(c).id) for c in model.chains
        }
        if chain_status != expected_chains:
            problems.append(
                f"chains (status, tail): adapter {chain_status}, model {expected_chains}"
            )
        for job_id, chain_ids in blockers.items():
            if chain_ids != model.jobs[job_id].blockers:
                problems.append(
                    f"job {job_id}: blockers {chain_ids}, the model says {model.jobs[job_id].blockers}"
                )
        for type_name in self.types:
            statuses = [model.status(j) for j in model.open_jobs() if j.type_name == type_name]
            want = "now" if "ready" in statuses else "later" if "scheduled" in statuses else "none"
            got = due[type_name]
            bucket = "none" if got is None else "now" if got == timedelta(0) else "later"
            if bucket != want:
                problems.append(f"next_due([{type_name!r}]) is {got}, the model expects {want}")
        for entry in stats:
            counted = [model.status(j) for j in model.open_jobs() if j.type_name == entry.type_name]
            want_counts = {
                k: counted.count(k) for k in ("ready", "scheduled", "blocked", "running")
            }
            got_counts = {k: getattr(entry, k) for k in want_counts}
            if got_counts != want_counts or not 0 <= entry.lease_expired <= entry.running:
                problems.append(
                    f"get_queue_stats for {entry.type_name!r}: {entry}, the model counts {want_counts}"
                )
            if (entry.oldest_ready_age is None) != (entry.ready == 0):
                problems.append(f"get_queue_stats for {entry.type_name!r}: age {entry}")
        if [e.type_name for e in stats] != sorted(set(self.types)):
            problems.append(f"get_queue_stats entries {[e.type_name for e in stats]}")
        assert not problems, "the adapter differs from the model:\n" + "\n".join(problems)


class TestStateModel:
    async def test_random_client_and_worker_actions_match_the_model(
        self, queuert_state_harness: StateHarness
    ) -> None:
        adapter = queuert_state_harness.adapter
        loop = asyncio.get_running_loop()
        savepoints = adapter.capabilities.savepoints

        class Machine(StateModelMachine):
            def __init__(self) -> None:
                super().__init__(adapter, loop, savepoints)

        def drive() -> None:
            run_state_machine_as_test(
                Machine,
                settings=settings(
                    max_examples=EXAMPLES,
                    stateful_step_count=STEPS,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                    phases=PHASES if SHRINK else [p for p in PHASES if p is not Phase.shrink],
                ),
            )

        try:
            await asyncio.to_thread(drive)
        except BaseException as exc:
            if not SHRINK and hasattr(exc, "add_note"):
                exc.add_note(
                    "queuert-conformance: set QUEUERT_CONFORMANCE_MODEL_SHRINK=1 to shrink this "
                    "failure to a minimal sequence of actions"
                )
            raise
