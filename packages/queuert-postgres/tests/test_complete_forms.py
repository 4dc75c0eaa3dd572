"""A single completion runs a plain guarded ``UPDATE`` when it has nothing to release, else a
statement of its own (scalar arguments); a batch runs the array form: all must close, refuse and
release alike."""

from __future__ import annotations

from dataclasses import dataclass
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
    """Eight completions by worker ``w`` (all of type ``type_name``): of a job it holds whose chain
    blocks a dependent; of a job it holds that continues its chain; of a job another worker holds;
    of a closed job; of a job that does not exist; of a job it holds in a chain of one with nothing
    waiting for it; of such a job that fails; of a job it holds that continues a chain another job
    waits for. Returns them and the two dependents' ids (the first is released, the second not:
    its blocker chain goes on)."""
    lease = {type_name: timedelta(minutes=5)}
    blocker, continued, taken, closed, plain, failing, continued_blocker = (
        created.job for created in await adapter.create_jobs([job(type_name) for _ in range(7)])
    )
    dependents = [created.job for created in await adapter.create_jobs([job("dep"), job("dep")])]
    await adapter.add_blockers(
        [(dependents[0].id, [blocker.id]), (dependents[1].id, [continued_blocker.id])],
        trace_contexts=[["tc"], ["tc2"]],
    )
    async with adapter.transaction() as tx:
        successors = [
            created.job
            for created in await adapter.create_jobs(
                [
                    NewJob(
                        id=uuid7(),
                        type_name=type_name,
                        chain_id=chain.chain_id,
                        chain_type_name=type_name,
                        chain_index=1,
                        input=None,
                    )
                    for chain in (continued, continued_blocker)
                ],
                tx=tx,
            )
        ]
    mine = await adapter.claim_jobs(leases=lease, limit=2, worker_id="w")
    assert {j.id for j in mine.jobs} == {blocker.id, continued.id}
    other = await adapter.claim_jobs(leases=lease, limit=1, worker_id="other")
    assert [j.id for j in other.jobs] == [taken.id]
    await adapter.complete_job(closed.id, outcome="completed", worker_id=None, output=0)
    more = await adapter.claim_jobs(leases=lease, limit=3, worker_id="w")
    assert {j.id for j in more.jobs} == {plain.id, failing.id, continued_blocker.id}
    completions = [
        Completion(blocker.id, output={"done": 1}),
        Completion(continued.id, succeeded_by_job_id=successors[0].id),
        Completion(taken.id, output=2),
        Completion(closed.id, output=3),
        Completion(str(uuid7()), output=4),
        Completion(plain.id, output=[6]),
        Completion(failing.id, outcome="failed", error="boom"),
        Completion(continued_blocker.id, succeeded_by_job_id=successors[1].id),
    ]
    return completions, [d.id for d in dependents]


EXPECTED = [
    ("completed", "completed", {"done": 1}, None, False, "w", None, True, ["dep"], ["tc"]),
    ("continued", "completed", None, None, True, "w", None, False, [], []),
    None,
    None,
    None,
    ("completed", "completed", [6], None, False, "w", None, True, [], []),
    ("failed", "failed", None, "boom", False, "w", None, True, [], []),
    ("continued", "completed", None, None, True, "w", None, False, [], []),
]

STATEMENTS = [2, 1, 2, 2, 2, 1, 1, 1]
"""Statements per completion alone: one when it releases nothing and is not refused (the plain
``UPDATE``), else a second one (the full statement)."""


def _shape(result: CompleteResult | None) -> tuple[Any, ...] | None:
    if result is None:
        return None
    closed = result.job
    assert closed.completed_at is not None
    return (
        closed.status,
        closed.outcome,
        closed.output,
        closed.last_attempt_error,
        closed.succeeded_by_job_id is not None,
        closed.completed_by,
        closed.leased_by,
        closed.closes_chain,
        [j.type_name for j in result.unblocked],
        list(result.blocker_trace_contexts),
    )


@dataclass
class Scenes:
    """Two scenes on one adapter: ``one`` completed one completion at a time, ``batch`` together
    (each: the completions, and the ids of its two dependents)."""

    adapter: PgStateAdapter[Any]
    provider: CountingProvider
    one: tuple[list[Completion], list[str]]
    batch: tuple[list[Completion], list[str]]

    async def assert_only_the_first_dependents_released(self) -> None:
        for _, dependents in (self.one, self.batch):
            states = []
            for dependent in dependents:
                stored = await self.adapter.get_job(dependent)
                assert stored is not None
                states.append(stored.status)
            assert states == ["ready", "blocked"]


@pytest.fixture
async def scenes(counted: tuple[PgStateAdapter[Any], CountingProvider]) -> Scenes:
    adapter, provider = counted
    built = Scenes(adapter, provider, await _scene(adapter, "one"), await _scene(adapter, "batch"))
    provider.take()  # count from here
    return built


async def test_one_completion_at_a_time_and_a_batch_agree(scenes: Scenes) -> None:
    adapter, provider = scenes.adapter, scenes.provider
    singles = []
    for completion, statements in zip(scenes.one[0], STATEMENTS, strict=True):
        singles.append((await adapter.complete_jobs([completion], worker_id="w", owner="w"))[0])
        assert provider.take() == statements, completion
    together = await adapter.complete_jobs(scenes.batch[0], worker_id="w", owner="w")
    assert provider.take() == 2, "the plain UPDATE, then the full statement for the others"

    assert [_shape(r) for r in singles] == [_shape(r) for r in together]
    assert [_shape(r) for r in singles] == EXPECTED
    await scenes.assert_only_the_first_dependents_released()


async def test_the_full_statements_alone_agree(scenes: Scenes) -> None:
    """The full statements, without the plain ``UPDATE`` first, give the same results: the plain
    one changes the cost of the common case, not what a completion does."""
    adapter, provider = scenes.adapter, scenes.provider
    singles = []
    for completion in scenes.one[0]:
        args = adapter._completion_args(completion, "w", "w")
        (result,), _ = await adapter._complete_fully([completion], args, None)
        singles.append(result)
        assert provider.take() == 1
    batch = scenes.batch[0]
    together, _ = await adapter._complete_fully(
        batch, adapter._completions_args(batch, "w", "w"), None
    )
    assert provider.take() == 1

    assert [_shape(r) for r in singles] == EXPECTED
    assert [_shape(r) for r in together] == EXPECTED
    await scenes.assert_only_the_first_dependents_released()


async def test_a_single_refusal_says_why(
    counted: tuple[PgStateAdapter[Any], CountingProvider],
) -> None:
    """``complete_job`` (the one-completion statement) tells the three refusals apart."""
    adapter, _ = counted
    completions, _ = await _scene(adapter, "work")
    taken, closed, missing = completions[2:5]
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
