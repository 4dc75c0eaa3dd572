"""The state adapter conformance suite against the in-memory reference adapter.

Below the suite: behaviour specific to the in-memory adapter (serialised transactions, deadlock
detection, the poison hook, JSON copying).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from queuert.errors import StateAdapterClosedError, TransactionAbortedError, UsageError
from queuert.ids import uuid7
from queuert.in_memory import InMemoryStateAdapter, InMemoryTransaction
from queuert.state import NewJob, StateAdapter
from queuert_conformance import StateHarness
from queuert_conformance.state import *  # noqa: F403


@pytest_asyncio.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    adapter = InMemoryStateAdapter()
    await adapter.migrate()

    async def open_sharing() -> StateAdapter[InMemoryTransaction]:
        return adapter.another()

    yield StateHarness(adapter=adapter, poison=adapter.poison, open_sharing=open_sharing)
    await adapter.close()


@pytest_asyncio.fixture
async def adapter() -> AsyncIterator[InMemoryStateAdapter]:
    adapter = InMemoryStateAdapter()
    yield adapter
    await adapter.close()


def job(type_name: str = "t", input: object = None) -> NewJob:
    return NewJob(id=uuid7(), type_name=type_name, chain_type_name=type_name, input=input)  # type: ignore[arg-type]


class TestInMemorySpecifics:
    def test_is_a_state_adapter(self) -> None:
        adapter: StateAdapter[InMemoryTransaction] = InMemoryStateAdapter()  # checks the protocol
        assert adapter.capabilities.concurrent_transactions is False
        assert adapter.capabilities.poison_transaction is True

    async def test_a_second_transaction_in_the_same_task_raises(
        self, adapter: InMemoryStateAdapter
    ) -> None:
        async with adapter.transaction():
            with pytest.raises(UsageError, match="deadlock"):
                async with adapter.transaction():
                    pass
        async with adapter.transaction():
            pass  # the adapter is still usable

    async def test_a_write_without_tx_inside_a_transaction_raises(
        self, adapter: InMemoryStateAdapter
    ) -> None:
        async with adapter.transaction() as tx:
            with pytest.raises(UsageError):
                await adapter.create_jobs([job()])
            (created,) = await adapter.create_jobs([job()], tx=tx)
            assert await adapter.get_job(created.job.id) is None, "reads without tx never wait"
        assert await adapter.get_job(created.job.id) is not None

    async def test_transactions_are_serialised(self, adapter: InMemoryStateAdapter) -> None:
        order: list[str] = []
        release = asyncio.Event()

        async def first() -> None:
            async with adapter.transaction():
                order.append("first in")
                await release.wait()
                order.append("first out")

        async def second() -> None:
            async with adapter.transaction():
                order.append("second in")

        one = asyncio.ensure_future(first())
        await asyncio.sleep(0)
        two = asyncio.ensure_future(second())
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == ["first in"], "the second transaction must wait for the first"
        release.set()
        await asyncio.wait_for(asyncio.gather(one, two), 5)
        assert order == ["first in", "first out", "second in"]

    async def test_a_task_started_inside_a_transaction_may_open_its_own_later(
        self, adapter: InMemoryStateAdapter
    ) -> None:
        async def child() -> str:
            async with adapter.transaction() as tx:
                (created,) = await adapter.create_jobs([job()], tx=tx)
                return created.job.id

        async with adapter.transaction():
            task = asyncio.ensure_future(child())
            await asyncio.sleep(0)
        job_id = await asyncio.wait_for(task, 5)
        assert await adapter.get_job(job_id) is not None

    async def test_a_finished_transaction_cannot_be_used(
        self, adapter: InMemoryStateAdapter
    ) -> None:
        async with adapter.transaction() as tx:
            pass
        with pytest.raises(UsageError):
            await adapter.get_job(uuid7(), tx=tx)
        other = InMemoryStateAdapter()
        async with other.transaction() as foreign:
            with pytest.raises(UsageError):
                await adapter.get_job(uuid7(), tx=foreign)
        await other.close()

    async def test_poison_aborts_until_the_savepoint_rolls_back(
        self, adapter: InMemoryStateAdapter
    ) -> None:
        async with adapter.transaction() as tx:
            (kept,) = await adapter.create_jobs([job()], tx=tx)
            with pytest.raises(TransactionAbortedError):
                async with adapter.savepoint(tx) as sp:
                    await adapter.poison(sp)
                    assert tx.aborted
                    await adapter.get_job(kept.job.id, tx=sp)
            assert not tx.aborted
            with pytest.raises(TransactionAbortedError):
                async with adapter.savepoint(tx) as sp:
                    await adapter.create_jobs([job()], tx=sp)
                    await adapter.poison(sp)
                    # swallowing nothing: releasing an aborted savepoint fails and rolls it back
            assert await adapter.get_job(kept.job.id, tx=tx) is not None
        assert await adapter.get_job(kept.job.id) is not None

    async def test_a_poisoned_transaction_rolls_back_at_commit(
        self, adapter: InMemoryStateAdapter
    ) -> None:
        with pytest.raises(TransactionAbortedError):
            async with adapter.transaction() as tx:
                (created,) = await adapter.create_jobs([job()], tx=tx)
                await adapter.poison(tx)
        assert await adapter.get_job(created.job.id) is None

    async def test_a_failed_operation_leaves_the_transaction_usable(
        self, adapter: InMemoryStateAdapter
    ) -> None:
        async with adapter.transaction() as tx:
            (existing,) = await adapter.create_jobs([job()], tx=tx)
            fresh = job()
            with pytest.raises(Exception, match="already exists"):
                await adapter.create_jobs(
                    [
                        fresh,
                        NewJob(id=existing.job.id, type_name="t", chain_type_name="t", input=1),
                    ],
                    tx=tx,
                )
            assert await adapter.get_job(fresh.id, tx=tx) is None, "operations are atomic"
        assert await adapter.get_job(existing.job.id) is not None

    async def test_close_while_a_transaction_is_open(self, adapter: InMemoryStateAdapter) -> None:
        with pytest.raises(StateAdapterClosedError):
            async with adapter.transaction() as tx:
                (created,) = await adapter.create_jobs([job()], tx=tx)
                await adapter.close()
        await adapter.close()
        with pytest.raises(StateAdapterClosedError):
            await adapter.get_job(created.job.id)

    async def test_another_adapter_shares_the_store_and_its_transactions(
        self, adapter: InMemoryStateAdapter
    ) -> None:
        other = adapter.another()
        async with adapter.transaction() as tx:
            (created,) = await other.create_jobs([job()], tx=tx)
            with pytest.raises(UsageError, match="deadlock"):
                async with other.transaction():
                    pass
        assert await other.get_job(created.job.id) is not None
        assert await adapter.get_job(created.job.id) is not None
        await other.close()
        with pytest.raises(StateAdapterClosedError):
            await other.get_job(created.job.id)
        assert await adapter.get_job(created.job.id) is not None, "the owner stays open"
        assert other.ids is adapter.ids

    async def test_triggering_a_ready_job_keeps_its_place(
        self, adapter: InMemoryStateAdapter
    ) -> None:
        (first,) = await adapter.create_jobs([job()])
        (second,) = await adapter.create_jobs([job()])
        result = await adapter.trigger_jobs([first.job.id])
        assert result.triggered[0].scheduled_at == first.job.scheduled_at
        claimed = await adapter.claim_jobs(
            leases={"t": timedelta(minutes=1)}, limit=2, worker_id="w"
        )
        assert [j.id for j in claimed.jobs] == [first.job.id, second.job.id]
