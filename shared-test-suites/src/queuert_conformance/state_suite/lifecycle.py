"""The adapter itself: protocol shape, capabilities, migrate() and close()."""

from __future__ import annotations

import pytest
from queuert.errors import StateAdapterClosedError
from queuert.ids import uuid7
from queuert.state import Capabilities, ChainFilter, JobFilter, MigrationResult, StateAdapter

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import LONG_LEASE, TYPE_A, WORKER, Ops, new_job

__all__ = ["TestAdapterLifecycle"]


class TestAdapterLifecycle:
    async def test_implements_the_protocol(self, queuert_state_harness: StateHarness) -> None:
        adapter = queuert_state_harness.adapter
        assert isinstance(adapter, StateAdapter), "the adapter lacks StateAdapter methods"
        assert isinstance(adapter.capabilities, Capabilities)

    async def test_migrate_is_idempotent_and_keeps_data(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A, {"kept": True})
        for _ in range(2):
            result = await adapter.migrate()
            assert isinstance(result, MigrationResult)
            assert result.applied == [], f"a migrated store applied {result.applied} again"
        assert (await ops.job(job.id)).input == {"kept": True}

    async def test_close_is_idempotent(self, queuert_state_harness: StateHarness) -> None:
        adapter = queuert_state_harness.adapter
        await adapter.close()
        await adapter.close()

    async def test_operations_after_close_raise(self, queuert_state_harness: StateHarness) -> None:
        adapter = queuert_state_harness.adapter
        await Ops(queuert_state_harness).start(TYPE_A)
        await adapter.close()
        with pytest.raises(StateAdapterClosedError):
            await adapter.get_job(uuid7())
        with pytest.raises(StateAdapterClosedError):
            await adapter.create_jobs([new_job(TYPE_A)])
        with pytest.raises(StateAdapterClosedError):
            await adapter.claim_jobs(leases={TYPE_A: LONG_LEASE}, limit=1, worker_id=WORKER)
        with pytest.raises(StateAdapterClosedError):
            await adapter.list_jobs(JobFilter())
        with pytest.raises(StateAdapterClosedError):
            await adapter.list_chains(ChainFilter())
        with pytest.raises(StateAdapterClosedError):
            async with adapter.transaction():
                pass
        await adapter.close()
