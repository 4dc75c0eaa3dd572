"""create_jobs_publishing (optional: :class:`~queuert.state_publishing.SupportsCreatePublishing`):
jobs created in a transaction of the adapter's own that also publishes their notifications, only
when every job of the batch is created."""

from __future__ import annotations

from typing import Any

import pytest
from queuert.errors import DuplicateJobIdError
from queuert.notify import Notifications
from queuert.schedule import Deduplication
from queuert.state_publishing import SupportsCreatePublishing

from queuert_conformance.applicability import not_applicable
from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import TYPE_A, TYPE_B, Ops

__all__ = ["TestCreatePublishing"]

ANNOUNCED = Notifications({TYPE_A: 2}, frozenset({TYPE_B}), frozenset(), frozenset())


def publishing(harness: StateHarness) -> SupportsCreatePublishing:
    adapter = harness.adapter
    if not isinstance(adapter, SupportsCreatePublishing):
        not_applicable("create_publishing")
    return adapter


class Recorder:
    """A publisher recording what it was asked to publish, and whether the jobs were visible in
    the transaction it was given."""

    def __init__(self, harness: StateHarness, job_ids: list[str], fail: bool = False) -> None:
        self.adapter = harness.adapter
        self.job_ids = job_ids
        self.fail = fail
        self.published: list[Notifications] = []
        self.visible_in_tx: list[bool] = []

    async def __call__(self, tx: Any, notifications: Notifications) -> None:
        assert tx is not None, "published inside the transaction that creates the jobs"
        self.published.append(notifications)
        for job_id in self.job_ids:
            self.visible_in_tx.append(await self.adapter.get_job(job_id, tx=tx) is not None)
        if self.fail:
            raise RuntimeError("publishing failed")


class TestCreatePublishing:
    async def test_publishes_once_in_the_transaction_that_creates_the_jobs(
        self, queuert_state_harness: StateHarness
    ) -> None:
        adapter = publishing(queuert_state_harness)
        ops = Ops(queuert_state_harness)
        jobs = [ops.new_job(TYPE_A), ops.new_job(TYPE_A), ops.new_job(TYPE_B)]
        recorder = Recorder(queuert_state_harness, [j.id for j in jobs])
        created = await adapter.create_jobs_publishing(jobs, ANNOUNCED, recorder)
        assert [c.job.id for c in created] == [j.id for j in jobs]
        assert not any(c.deduplicated for c in created)
        assert recorder.published == [ANNOUNCED], "the notifications as given, once"
        assert recorder.visible_in_tx == [True, True, True]
        for job in jobs:
            assert await queuert_state_harness.adapter.get_job(job.id) is not None, "committed"

    async def test_an_error_of_publish_rolls_the_batch_back(
        self, queuert_state_harness: StateHarness
    ) -> None:
        adapter = publishing(queuert_state_harness)
        ops = Ops(queuert_state_harness)
        jobs = [ops.new_job(TYPE_A), ops.new_job(TYPE_B)]
        recorder = Recorder(queuert_state_harness, [], fail=True)
        with pytest.raises(RuntimeError, match="publishing failed"):
            await adapter.create_jobs_publishing(jobs, ANNOUNCED, recorder)
        for job in jobs:
            assert await queuert_state_harness.adapter.get_job(job.id) is None, "rolled back"

    async def test_a_failed_batch_publishes_nothing(
        self, queuert_state_harness: StateHarness
    ) -> None:
        adapter = publishing(queuert_state_harness)
        ops = Ops(queuert_state_harness)
        (stored,) = await queuert_state_harness.adapter.create_jobs([ops.new_job(TYPE_A)])
        fresh = ops.new_job(TYPE_A)
        recorder = Recorder(queuert_state_harness, [])
        with pytest.raises(DuplicateJobIdError):
            await adapter.create_jobs_publishing(
                [fresh, ops.new_job(TYPE_A, id=stored.job.id)], ANNOUNCED, recorder
            )
        assert recorder.published == []
        assert await queuert_state_harness.adapter.get_job(fresh.id) is None, "nothing written"

    async def test_a_deduplicated_job_leaves_the_publishing_to_the_caller(
        self, queuert_state_harness: StateHarness
    ) -> None:
        adapter = publishing(queuert_state_harness)
        ops = Ops(queuert_state_harness)
        key = Deduplication(key="publishing")
        (first,) = await queuert_state_harness.adapter.create_jobs(
            [ops.new_job(TYPE_A, deduplication=key)]
        )
        other = ops.new_job(TYPE_B)
        recorder = Recorder(queuert_state_harness, [])
        created = await adapter.create_jobs_publishing(
            [ops.new_job(TYPE_A, deduplication=key), other], ANNOUNCED, recorder
        )
        assert created[0].deduplicated and created[0].job.id == first.job.id
        assert not created[1].deduplicated and created[1].job.id == other.id
        assert recorder.published == [], "not every job was created: the caller announces"
        assert await queuert_state_harness.adapter.get_job(other.id) is not None
