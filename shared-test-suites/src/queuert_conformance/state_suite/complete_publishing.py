"""complete_jobs_publishing (optional: :class:`~queuert.state_publishing.SupportsCompletePublishing`):
a worker's group commit closed without a caller's transaction, what the closes announce published
in the transaction that makes them, for exactly the completions that took effect.

The publisher here is the case's own, which no adapter recognises: what it is handed is what the
adapter publishes. (An adapter that recognises its own backend's publisher may send the messages of
the completions that release nothing in its statement instead; its own tests check that path.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from queuert.json import JsonValue, dumps
from queuert.notify import Notifications
from queuert.state import CompleteResult, Completion, StoredJob
from queuert.state_publishing import SupportsCompletePublishing

from queuert_conformance.applicability import not_applicable
from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import TYPE_A, TYPE_B, WORKER, Ops

__all__ = ["TestCompletePublishing"]

NONE: frozenset[str] = frozenset()


def publishing(harness: StateHarness) -> SupportsCompletePublishing:
    adapter = harness.adapter
    if not isinstance(adapter, SupportsCompletePublishing):
        not_applicable("complete_publishing")
    return adapter


def closing(jobs: Sequence[StoredJob]) -> list[Notifications]:
    """What each job announces when it closes its chain releasing nothing (the case's own rule)."""
    return [Notifications({}, NONE, frozenset({job.chain_id}), NONE) for job in jobs]


def announce(results: Sequence[CompleteResult | None]) -> Notifications:
    """What closes announce (the case's own rule): each closed chain, and a wake-up of each released
    job's type."""
    ready: dict[str, int] = {}
    closed: set[str] = set()
    for result in results:
        if result is not None and result.job.closes_chain:
            closed.add(result.job.chain_id)
            for job in result.unblocked:
                ready[job.type_name] = ready.get(job.type_name, 0) + 1
    return Notifications(ready, NONE, frozenset(closed), NONE)


def completions(jobs: Sequence[StoredJob]) -> list[Completion]:
    """The worker's group commit of ``jobs`` (as it claimed them): each completed with an output."""
    found = []
    for n, job in enumerate(jobs):
        output: JsonValue = {"n": n}
        found.append(Completion(job.id, output=output, output_text=dumps(output), claimed=job))
    return found


async def group_commit(
    adapter: SupportsCompletePublishing, claimed: Sequence[StoredJob], recorder: Recorder
) -> list[CompleteResult | None]:
    """The worker's group commit of the ``claimed`` jobs, published through ``recorder``."""
    return await adapter.complete_jobs_publishing(
        completions(claimed),
        closing(claimed),
        announce,
        recorder,
        worker_id=WORKER,
        owner=WORKER,
    )


class Recorder:
    """A publisher recording what it was asked to publish, and what the jobs looked like in the
    transaction it was given."""

    def __init__(self, harness: StateHarness, job_ids: Sequence[str], fail: bool = False) -> None:
        self.adapter = harness.adapter
        self.job_ids = list(job_ids)
        self.fail = fail
        self.published: list[Notifications] = []
        self.closed_in_tx: list[list[bool]] = []

    async def __call__(self, tx: Any, notifications: Notifications) -> None:
        assert tx is not None, "published inside the transaction that closes the jobs"
        self.published.append(notifications)
        seen = []
        for job_id in self.job_ids:
            job = await self.adapter.get_job(job_id, tx=tx)
            seen.append(job is not None and job.outcome is not None)
        self.closed_in_tx.append(seen)
        if self.fail:
            raise RuntimeError("publishing failed")

    def merged(self) -> Notifications:
        """Everything published, merged (an adapter may publish in more than one transaction)."""
        ready: dict[str, int] = {}
        closed: set[str] = set()
        for one in self.published:
            for type_name, count in one.ready.items():
                ready[type_name] = ready.get(type_name, 0) + count
            closed |= one.closed_chains
            assert not one.scheduled and not one.ownership_lost, "only what the closes announce"
        return Notifications(ready, NONE, frozenset(closed), NONE)


class TestCompletePublishing:
    @pytest.mark.parametrize("count", [1, 3])
    async def test_publishes_what_the_closes_announce_in_their_transaction(
        self, queuert_state_harness: StateHarness, count: int
    ) -> None:
        adapter = publishing(queuert_state_harness)
        ops = Ops(queuert_state_harness)
        for _ in range(count):
            await ops.start(TYPE_A)
        claimed = (await ops.claim(TYPE_A, limit=count)).jobs
        assert len(claimed) == count
        recorder = Recorder(queuert_state_harness, [job.id for job in claimed])
        results = await group_commit(adapter, claimed, recorder)
        assert [r.job.id if r else None for r in results] == [job.id for job in claimed]
        for n, (job, result) in enumerate(zip(claimed, results, strict=True)):
            assert result is not None and result.job.status == "completed"
            stored = await ops.job(job.id)
            assert stored.status == "completed" and stored.output == {"n": n}, "committed"
            assert stored.completed_by == WORKER
        assert recorder.published, "published"
        assert recorder.merged() == Notifications(
            {}, NONE, frozenset(job.chain_id for job in claimed), NONE
        ), "each closed chain, once"
        assert all(all(seen) for seen in recorder.closed_in_tx), (
            "published in the transaction that closed the jobs"
        )

    @pytest.mark.parametrize("count", [1, 3])
    async def test_a_refused_completion_announces_nothing(
        self, queuert_state_harness: StateHarness, count: int
    ) -> None:
        """A completion whose lease was lost (the job put back meanwhile) closes nothing and
        publishes nothing; the others of the batch are closed and announced."""
        adapter = publishing(queuert_state_harness)
        ops = Ops(queuert_state_harness)
        for _ in range(count):
            await ops.start(TYPE_A)
        claimed = (await ops.claim(TYPE_A, limit=count)).jobs
        lost = claimed[0]
        await queuert_state_harness.adapter.reschedule_job(lost.id, schedule=None, error=None)
        recorder = Recorder(queuert_state_harness, [])
        results = await group_commit(adapter, claimed, recorder)
        assert results[0] is None, "refused: the worker no longer holds the job"
        assert (await ops.job(lost.id)).outcome is None, "left open"
        assert all(r is not None for r in results[1:])
        assert recorder.merged() == Notifications(
            {}, NONE, frozenset(job.chain_id for job in claimed[1:]), NONE
        ), "only the closed jobs' chains"

    async def test_a_close_that_releases_a_job_announces_its_wake_up(
        self, queuert_state_harness: StateHarness
    ) -> None:
        adapter = publishing(queuert_state_harness)
        ops = Ops(queuert_state_harness)
        first = await ops.start(TYPE_A)
        second = await ops.start(TYPE_A)
        dependent = await ops.start_blocked(TYPE_B, [second.id])
        claimed = (await ops.claim(TYPE_A, limit=2)).jobs
        assert {job.id for job in claimed} == {first.id, second.id}
        recorder = Recorder(queuert_state_harness, [])
        results = await group_commit(adapter, claimed, recorder)
        released = [job.id for r in results if r is not None for job in r.unblocked]
        assert released == [dependent.id]
        assert (await ops.job(dependent.id)).status == "ready"
        assert recorder.merged() == Notifications(
            {TYPE_B: 1}, NONE, frozenset({first.chain_id, second.chain_id}), NONE
        ), "both chains closed, and the released job's wake-up"

    async def test_an_error_of_publish_rolls_its_transaction_back(
        self, queuert_state_harness: StateHarness
    ) -> None:
        adapter = publishing(queuert_state_harness)
        ops = Ops(queuert_state_harness)
        job = await ops.start(TYPE_A)
        claimed = (await ops.claim(TYPE_A, limit=1)).jobs
        recorder = Recorder(queuert_state_harness, [], fail=True)
        with pytest.raises(RuntimeError, match="publishing failed"):
            await group_commit(adapter, claimed, recorder)
        stored = await ops.job(job.id)
        assert stored.outcome is None and stored.leased_by == WORKER, "rolled back"

    async def test_empty_input(self, queuert_state_harness: StateHarness) -> None:
        adapter = publishing(queuert_state_harness)
        recorder = Recorder(queuert_state_harness, [])
        results = await adapter.complete_jobs_publishing(
            [], [], announce, recorder, worker_id=WORKER, owner=WORKER
        )
        assert results == [] and recorder.published == []
