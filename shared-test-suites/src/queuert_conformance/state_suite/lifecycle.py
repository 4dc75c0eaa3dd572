"""The adapter itself: protocol shape, capabilities, id policy, migrate() and close()."""

from __future__ import annotations

from typing import Any

import pytest
from queuert.errors import StateAdapterClosedError
from queuert.ids import IdPolicy
from queuert.state import Capabilities, ChainFilter, JobFilter, MigrationResult, StateAdapter

from queuert_conformance.applicability import not_applicable
from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import LONG_LEASE, TYPE_A, WORKER, Ops, new_job

__all__ = ["TestAdapterLifecycle"]


class TestAdapterLifecycle:
    async def test_implements_the_protocol(self, queuert_state_harness: StateHarness) -> None:
        adapter = queuert_state_harness.adapter
        assert isinstance(adapter, StateAdapter), "the adapter lacks StateAdapter methods"
        assert isinstance(adapter.capabilities, Capabilities)
        assert isinstance(adapter.ids, IdPolicy), "the adapter declares no id policy (ids)"

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

    async def test_async_with_closes_the_adapter(self, queuert_state_harness: StateHarness) -> None:
        """``async with adapter as same: ...`` yields the adapter and closes it when the block
        ends, also when the block raises."""
        adapter = queuert_state_harness.adapter
        job = await Ops(queuert_state_harness).start(TYPE_A)
        with pytest.raises(LookupError):
            async with adapter as entered:
                assert entered is adapter
                assert (await entered.get_job(job.id)) is not None
                raise LookupError("the block fails")
        await assert_closed(adapter, job.id)
        async with adapter:  # entering a closed adapter is harmless; leaving closes it again
            pass

    async def test_operations_after_close_raise(self, queuert_state_harness: StateHarness) -> None:
        adapter = queuert_state_harness.adapter
        job = await Ops(queuert_state_harness).start(TYPE_A)
        await adapter.close()
        await assert_closed(adapter, job.id)
        await adapter.close()

    async def test_an_adapter_that_does_not_own_its_connections_closes_alone(
        self, queuert_state_harness: StateHarness
    ) -> None:
        """``close()`` closes the adapter whoever owns its connections; their owner goes on."""
        open_sharing = queuert_state_harness.open_sharing
        if open_sharing is None:
            not_applicable("open_sharing")
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        sharing = await open_sharing()
        try:
            found = await sharing.get_job(job.id)
            assert found is not None and found.id == job.id, "the sharing adapter sees the store"
            await sharing.close()
            await assert_closed(sharing, job.id)
            await sharing.close()
        finally:
            await sharing.close()
        assert (await ops.job(job.id)).id == job.id, (
            "closing an adapter that does not own its connections closed them for their owner"
        )
        async with adapter.transaction() as tx:
            later = await ops.start(TYPE_A, tx=tx)
        assert (await ops.job(later.id)).status == "ready"


async def assert_closed(adapter: StateAdapter[Any], job_id: str) -> None:
    """Every kind of call on a closed adapter raises StateAdapterClosedError."""
    with pytest.raises(StateAdapterClosedError):
        await adapter.get_job(job_id)
    with pytest.raises(StateAdapterClosedError):
        await adapter.get_chain(job_id)
    with pytest.raises(StateAdapterClosedError):
        await adapter.create_jobs([new_job(adapter.ids, TYPE_A)])
    with pytest.raises(StateAdapterClosedError):
        await adapter.claim_jobs(leases={TYPE_A: LONG_LEASE}, limit=1, worker_id=WORKER)
    with pytest.raises(StateAdapterClosedError):
        await adapter.list_jobs(JobFilter())
    with pytest.raises(StateAdapterClosedError):
        await adapter.list_chains(ChainFilter())
    with pytest.raises(StateAdapterClosedError):
        await adapter.delete_chains([job_id])
    with pytest.raises(StateAdapterClosedError):
        async with adapter.transaction():
            pass
