"""A single completion runs a statement of its own (scalar arguments) and a batch the array form:
both must close, refuse and release alike."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pg_helpers import CountingProvider
from queuert.errors import JobAlreadyCompletedError, JobNotFoundError, JobTakenByAnotherWorkerError
from queuert.ids import uuid7
from queuert.state import CompleteResult, Completion, NewJob
from queuert_postgres import PgStateAdapter


def job(type_name: str = "work", **kw: Any) -> NewJob:
    return NewJob(id=uuid7(), type_name=type_name, chain_type_name=type_name, input={"n": 1}, **kw)


async def _scene(
    adapter: PgStateAdapter[Any], type_name: str
) -> tuple[list[Completion], list[str]]:
    """Five completions by worker ``w``: one of a job it holds whose chain blocks a dependent,
    one of a job it holds that continues its chain, one of a job another worker holds, one of a
    closed job and one of a job that does not exist (all of type ``type_name``). Returns them and
    the dependent's id."""
    lease = {type_name: timedelta(minutes=5)}
    blocker, continued, taken, closed = (
        created.job for created in await adapter.create_jobs([job(type_name) for _ in range(4)])
    )
    (dependent,) = await adapter.create_jobs([job("dep")])
    await adapter.add_blockers([(dependent.job.id, [blocker.id])], trace_contexts=[["tc"]])
    async with adapter.transaction() as tx:
        (successor,) = await adapter.create_jobs(
            [
                NewJob(
                    id=uuid7(),
                    type_name=type_name,
                    chain_id=continued.chain_id,
                    chain_type_name=type_name,
                    chain_index=1,
                    input=None,
                )
            ],
            tx=tx,
        )
    mine = await adapter.claim_jobs(leases=lease, limit=2, worker_id="w")
    assert {j.id for j in mine.jobs} == {blocker.id, continued.id}
    other = await adapter.claim_jobs(leases=lease, limit=1, worker_id="other")
    assert [j.id for j in other.jobs] == [taken.id]
    await adapter.complete_job(closed.id, outcome="completed", worker_id=None, output=0)
    completions = [
        Completion(blocker.id, output={"done": 1}),
        Completion(continued.id, succeeded_by_job_id=successor.job.id),
        Completion(taken.id, output=2),
        Completion(closed.id, output=3),
        Completion(str(uuid7()), output=4),
    ]
    return completions, [dependent.job.id]


def _shape(result: CompleteResult | None) -> tuple[Any, ...] | None:
    if result is None:
        return None
    closed = result.job
    return (
        closed.outcome,
        closed.output,
        closed.succeeded_by_job_id is not None,
        closed.completed_by,
        closed.leased_by,
        closed.closes_chain,
        [j.type_name for j in result.unblocked],
        list(result.blocker_trace_contexts),
    )


async def test_one_completion_at_a_time_and_a_batch_agree(
    counted: tuple[PgStateAdapter[Any], CountingProvider],
) -> None:
    adapter, provider = counted
    one_by_one, dependents_1 = await _scene(adapter, "one")
    batch, dependents_2 = await _scene(adapter, "batch")

    provider.take()
    singles = [(await adapter.complete_jobs([c], worker_id="w", owner="w"))[0] for c in one_by_one]
    assert provider.take() == len(one_by_one), "one statement per completion"
    together = await adapter.complete_jobs(batch, worker_id="w", owner="w")
    assert provider.take() == 1

    assert [_shape(r) for r in singles] == [_shape(r) for r in together]
    assert [_shape(r) for r in singles] == [
        ("completed", {"done": 1}, False, "w", None, True, ["dep"], ["tc"]),
        ("completed", None, True, "w", None, False, [], []),
        None,
        None,
        None,
    ]
    for dependent in (*dependents_1, *dependents_2):
        stored = await adapter.get_job(dependent)
        assert stored is not None and stored.status == "ready"


async def test_a_single_refusal_says_why(
    counted: tuple[PgStateAdapter[Any], CountingProvider],
) -> None:
    """``complete_job`` (the one-completion statement) tells the three refusals apart."""
    adapter, _ = counted
    completions, _ = await _scene(adapter, "work")
    _, _, taken, closed, missing = completions
    for completion, error in (
        (taken, JobTakenByAnotherWorkerError),
        (closed, JobAlreadyCompletedError),
        (missing, JobNotFoundError),
    ):
        with pytest.raises(error):
            async with adapter.transaction() as tx:
                await adapter.complete_job(
                    completion.job_id,
                    outcome="completed",
                    worker_id="w",
                    output=5,
                    owner="w",
                    tx=tx,
                )
