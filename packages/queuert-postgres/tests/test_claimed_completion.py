"""``complete_jobs`` of one job its worker claimed (every job of the exactly-once path): the job it
returns is the row read back, in the caller's transaction or without one; a lost lease is refused
(``None``) and nothing is written; a statement in an aborted transaction raises
``TransactionAbortedError``; a closed adapter refuses the call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from pg_helpers import DSN, Namespace
from queuert import Client, EntryJobType
from queuert.errors import StateAdapterClosedError, TransactionAbortedError
from queuert.json import JsonValue, dumps
from queuert.state import Completion, StoredJob
from queuert_postgres import PgStateAdapter

WORKER = "claimed-completion-worker"


@dataclass
class In:
    n: int


class Claimed(EntryJobType[In, Any], name="cc_claimed"):
    pass


@pytest.fixture
async def state(namespace: Namespace) -> AsyncIterator[PgStateAdapter[Any]]:
    adapter = await PgStateAdapter.connect(DSN, schema=namespace.schema)
    try:
        await adapter.migrate()
        yield adapter
    finally:
        await adapter.close()


async def claimed(state: PgStateAdapter[Any], worker_id: str = WORKER) -> StoredJob:
    async with Client(state, job_types=[Claimed]) as client:
        await client.start_chain(Claimed(In(1)))
    result = await state.claim_jobs(
        leases={"cc_claimed": timedelta(minutes=5)}, limit=1, worker_id=worker_id
    )
    (job,) = result.jobs
    return job


def completion(job: StoredJob, output: JsonValue) -> Completion:
    return Completion(job.id, output=output, output_text=dumps(output), claimed=job)


@pytest.mark.parametrize(
    "output",
    [None, 0, "text", [1, "two", None], {"nested": {"list": [True, 1.5]}}],
    ids=["null", "int", "str", "list", "object"],
)
@pytest.mark.parametrize("in_transaction", [True, False], ids=["tx", "no-tx"])
async def test_the_closed_job_is_the_row_read_back(
    state: PgStateAdapter[Any], output: JsonValue, in_transaction: bool
) -> None:
    job = await claimed(state)
    one = completion(job, output)
    if in_transaction:
        async with state.transaction() as tx:
            (result,) = await state.complete_jobs([one], worker_id=WORKER, owner=WORKER, tx=tx)
    else:
        (result,) = await state.complete_jobs([one], worker_id=WORKER, owner=WORKER)
    assert result is not None
    assert result.unblocked == [] and result.blocker_trace_contexts == []
    assert result.job.status == "completed" and result.job.output == output
    assert result.job == await state.get_job(job.id)


async def test_a_lost_lease_is_refused_and_writes_nothing(state: PgStateAdapter[Any]) -> None:
    job = await claimed(state, worker_id="another-worker")
    async with state.transaction() as tx:
        (result,) = await state.complete_jobs(
            [completion(job, 1)], worker_id=WORKER, owner=WORKER, tx=tx
        )
    assert result is None
    stored = await state.get_job(job.id)
    assert (
        stored is not None and stored.status == "running" and stored.leased_by == "another-worker"
    )


async def test_a_completion_in_an_aborted_transaction_raises(state: PgStateAdapter[Any]) -> None:
    job = await claimed(state)
    with pytest.raises(TransactionAbortedError):
        async with state.transaction() as tx:
            with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
                await tx.execute("SELECT 1 / 0")
            await state.complete_jobs([completion(job, 1)], worker_id=WORKER, owner=WORKER, tx=tx)
    stored = await state.get_job(job.id)
    assert stored is not None and stored.status == "running"


async def test_a_closed_adapter_refuses_the_completion(namespace: Namespace) -> None:
    adapter = await PgStateAdapter.connect(DSN, schema=namespace.schema)
    await adapter.migrate()
    job = await claimed(adapter)
    await adapter.close()
    with pytest.raises(StateAdapterClosedError):
        await adapter.complete_jobs([completion(job, 1)], worker_id=WORKER, owner=WORKER)
