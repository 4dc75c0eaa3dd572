"""Round trips: an operation is one hop to the connection thread, whatever its batch size."""

from __future__ import annotations

from datetime import timedelta

import pytest
from queuert.errors import (
    DuplicateJobIdError,
    JobAlreadyCompletedError,
    JobNotFoundError,
    JobTakenByAnotherWorkerError,
)
from queuert.state import Completion, JobFilter
from queuert_sqlite import SqliteStateAdapter
from sqlite_helpers import LEASE, TYPE, HopCounter, new_job


@pytest.mark.parametrize("size", [1, 100, 1000])
async def test_operations_are_one_round_trip_per_batch(
    thread_adapter: SqliteStateAdapter, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    adapter = thread_adapter
    hops = HopCounter(monkeypatch)
    blockers = await adapter.create_jobs([new_job(i, type_name="blocker") for i in range(size)])
    assert hops.count == 1
    created = await adapter.create_jobs([new_job(i) for i in range(size)])
    hops.reset()
    await adapter.add_blockers([(c.job.id, [blockers[i].job.id]) for i, c in enumerate(created)])
    assert hops.count == 1
    hops.reset()
    claimed = await adapter.claim_jobs(leases={"blocker": LEASE[TYPE]}, limit=size, worker_id="w")
    assert len(claimed.jobs) == size and hops.count == 1
    hops.reset()
    renewal = await adapter.renew_leases({j.id: LEASE[TYPE] for j in claimed.jobs}, worker_id="w")
    assert len(renewal.renewed) == size and hops.count == 1
    hops.reset()
    await adapter.renew_leases({j.id: timedelta(0) for j in claimed.jobs}, worker_id="w")
    reaped = await adapter.reap_expired_leases(["blocker"], limit=size)
    assert len(reaped) == size and hops.count == 2
    hops.reset()
    page = await adapter.list_jobs(JobFilter(type_names=[TYPE]), limit=size)
    assert len(page.items) == size and hops.count == 1
    hops.reset()
    triggered = await adapter.trigger_jobs([j.id for j in reaped])
    assert len(triggered.triggered) == size and hops.count == 1
    hops.reset()
    deleted = await adapter.delete_chains([c.job.id for c in created], cascade=True)
    assert len(deleted.deleted) == 2 * size and hops.count == 1


async def test_a_transaction_costs_one_hop_per_operation_plus_commit(
    adapter: SqliteStateAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    (ready,) = await adapter.create_jobs([new_job()])
    hops = HopCounter(monkeypatch)
    async with adapter.transaction() as tx:  # BEGIN rides with the first operation
        claimed = await adapter.claim_jobs(leases=LEASE, limit=1, worker_id="w", tx=tx)
        async with adapter.savepoint(tx) as sp:  # so does a savepoint
            locked = await adapter.get_job(ready.job.id, lock=True, tx=sp)
        assert locked is not None
        await adapter.complete_job(
            claimed.jobs[0].id, outcome="completed", worker_id="w", output=1, tx=tx
        )
    assert hops.count == 4  # claim, get_job, complete_job, COMMIT


async def test_duplicate_id_writes_nothing_of_the_batch(adapter: SqliteStateAdapter) -> None:
    (existing,) = await adapter.create_jobs([new_job("old")])
    batch = [new_job(i) for i in range(5)]
    batch.insert(3, new_job("clash", id=existing.job.id))
    with pytest.raises(DuplicateJobIdError) as caught:
        await adapter.create_jobs(batch)
    assert caught.value.job_id == existing.job.id
    assert [j.id for j in (await adapter.list_jobs(JobFilter())).items] == [existing.job.id]

    async with adapter.transaction() as tx:
        (kept,) = await adapter.create_jobs([new_job("kept")], tx=tx)
        with pytest.raises(DuplicateJobIdError):
            await adapter.create_jobs(batch, tx=tx)
        twice = new_job("twice")
        with pytest.raises(DuplicateJobIdError) as caught:
            await adapter.create_jobs([new_job(1), twice, twice], tx=tx)
        assert caught.value.job_id == twice.id
        (after,) = await adapter.create_jobs([new_job("after")], tx=tx)  # tx still usable
    listed = {j.id for j in (await adapter.list_jobs(JobFilter())).items}
    assert listed == {existing.job.id, kept.job.id, after.job.id}


async def test_claim_across_types_takes_the_oldest_first(adapter: SqliteStateAdapter) -> None:
    order = []
    for i in range(12):
        (c,) = await adapter.create_jobs([new_job(i, type_name=f"t{i % 3}")])
        order.append(c.job.id)
    leases = {f"t{n}": timedelta(minutes=1) for n in range(3)}
    first = await adapter.claim_jobs(leases=leases, limit=5, worker_id="w")
    assert [j.id for j in first.jobs] == order[:5] and first.has_more
    rest = await adapter.claim_jobs(leases=leases, limit=7, worker_id="w")
    assert [j.id for j in rest.jobs] == order[5:] and not rest.has_more


async def test_complete_jobs_is_one_round_trip_and_skips_what_it_cannot_close(
    thread_adapter: SqliteStateAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = thread_adapter
    created = await adapter.create_jobs([new_job(i) for i in range(50)])
    claimed = await adapter.claim_jobs(leases=LEASE, limit=40, worker_id="w")
    other = await adapter.claim_jobs(leases=LEASE, limit=10, worker_id="other")
    hops = HopCounter(monkeypatch)
    completions = [Completion(j.id, output=j.input) for j in claimed.jobs]
    completions += [Completion(j.id) for j in other.jobs]  # leased by someone else
    completions.append(Completion("missing"))
    results = await adapter.complete_jobs(completions, worker_id="w", owner="w")
    assert hops.count == 1
    assert [r.job.id if r else None for r in results] == [j.id for j in claimed.jobs] + [None] * 11
    assert all(r.job.status == "completed" and r.job.output == r.job.input for r in results if r)
    again = await adapter.complete_jobs(completions[:3], worker_id="w")
    assert again == [None, None, None], "closed jobs are left untouched"
    with pytest.raises(JobAlreadyCompletedError):
        await adapter.complete_job(claimed.jobs[0].id, outcome="completed", worker_id="w")
    with pytest.raises(JobTakenByAnotherWorkerError) as caught:
        await adapter.complete_job(other.jobs[0].id, outcome="failed", worker_id="w", owner="w")
    assert caught.value.leased_by == "other"
    with pytest.raises(JobNotFoundError):
        await adapter.complete_job("missing", outcome="cancelled", worker_id=None)
    untouched = await adapter.get_job(other.jobs[0].id)
    assert untouched is not None and untouched.status == "running"
    assert len(created) == 50


def test_rows_build_the_same_stored_job_as_its_constructor() -> None:
    from dataclasses import asdict, replace
    from datetime import datetime, timezone

    from queuert.state import StoredJob
    from queuert_sqlite._rows import _FAST, make_job

    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    values: dict[str, object] = {
        "id": "j",
        "type_name": "t",
        "chain_id": "j",
        "chain_type_name": "t",
        "chain_index": 0,
        "input": {"a": [1, 2]},
        "output": None,
        "status": "ready",
        "outcome": None,
        "created_at": at,
        "scheduled_at": at,
        "completed_at": None,
        "completed_by": None,
        "succeeded_by_job_id": None,
        "attempt": 0,
        "last_attempt_at": None,
        "last_attempt_error": None,
        "leased_by": None,
        "leased_until": None,
        "blocked": False,
        "deduplication_key": "k",
        "chain_trace_context": None,
        "trace_context": "tc",
    }
    assert _FAST, "StoredJob changed shape: rows now use its constructor (slower, still correct)"
    fast = make_job(dict(values))
    slow = StoredJob(**values)  # type: ignore[arg-type]
    assert fast == slow and repr(fast) == repr(slow)
    assert asdict(fast) == asdict(slow)
    assert replace(fast, attempt=1) == replace(slow, attempt=1)
    with pytest.raises(AttributeError):
        fast.attempt = 2  # type: ignore[misc]
