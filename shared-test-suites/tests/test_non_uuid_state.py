"""The state suite depends only on the adapter's id policy: it passes unchanged on an adapter whose
ids are not UUIDs (``queuert_state_harness`` of this directory's conftest)."""

from __future__ import annotations

import inspect

import pytest
from queuert.ids import uuid7
from queuert.state import StateAdapter
from queuert_conformance import StateHarness
from queuert_conformance.state import *  # noqa: F403

_WITHOUT_IDS = {
    "transaction",
    "savepoint",
    "migrate",
    "close",
    "next_due",
    "get_queue_stats",
    "claim_jobs",
    "get_job_activity",
}


class TestTheNonUuidAdapter:
    """The adapter under test here really refuses ids outside its policy, so the run proves
    something."""

    def test_its_policy_is_not_uuids(self, queuert_state_harness: StateHarness) -> None:
        policy = queuert_state_harness.adapter.ids
        made = [policy.generate() for _ in range(3)]
        assert all(policy.is_valid(i) and len(i) == 24 for i in made)
        assert not policy.is_valid(uuid7())

    def test_every_operation_with_ids_is_checked(self, queuert_state_harness: StateHarness) -> None:
        operations = {
            name
            for name, member in inspect.getmembers(StateAdapter)
            if not name.startswith("_") and inspect.isfunction(member)
        }
        checked = operations & set(vars(queuert_state_harness.adapter))
        assert operations - checked == _WITHOUT_IDS

    async def test_a_uuid_is_refused_and_recorded(
        self, queuert_state_harness: StateHarness
    ) -> None:
        adapter = queuert_state_harness.adapter
        uuid = uuid7()
        with pytest.raises(AssertionError, match="hex24"):
            await adapter.get_job(uuid)
        with pytest.raises(AssertionError, match="hex24"):
            await adapter.trigger_jobs([adapter.ids.generate(), uuid])
        refused: list[tuple[str, object]] = getattr(adapter, "refused")  # noqa: B009
        assert refused == [("get_job", uuid), ("trigger_jobs", uuid)]
        refused.clear()  # expected here: keep the fixture's teardown check for the suites
        assert await adapter.get_job(adapter.ids.generate()) is None
