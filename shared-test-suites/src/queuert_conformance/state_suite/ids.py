"""The adapter's id policy (``ids``): the ids it makes are valid and distinct, and every id it accepts
is stored and found again exactly as given, through every operation that takes or returns ids."""

from __future__ import annotations

import uuid

from queuert.state import ChainFilter, Completion, JobFilter

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    LONG_LEASE,
    TYPE_A,
    TYPE_B,
    TYPE_C,
    WORKER,
    Ops,
    ids,
)

__all__ = ["TestIdPolicy"]


def candidate_ids(harness: StateHarness, count: int) -> list[str]:
    """``count`` ids the policy accepts: ones it makes, then (when it accepts them) the extreme and
    random UUIDs a UUID store must hold, so edge values are exercised where they apply."""
    policy = harness.adapter.ids
    extra = [
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        str(uuid.uuid4()),
        str(uuid.uuid4()),
    ]
    accepted = [value for value in extra if policy.is_valid(value)]
    return (accepted + [policy.generate() for _ in range(count)])[:count]


class TestIdPolicy:
    async def test_made_ids_are_valid_and_distinct(
        self, queuert_state_harness: StateHarness
    ) -> None:
        policy = queuert_state_harness.adapter.ids
        made = [policy.generate() for _ in range(500)]
        assert all(isinstance(i, str) and policy.is_valid(i) for i in made), (
            f"the {policy.name!r} policy made an id it does not accept"
        )
        assert len(set(made)) == len(made), "the policy made the same id twice"
        for value in ("", " ", "not an id", made[0] + "x", " " + made[0]):
            assert not policy.is_valid(value), f"the {policy.name!r} policy accepts {value!r}"

    async def test_accepted_ids_round_trip_through_every_operation(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        first_id, next_id, blocker_id, other_id = candidate_ids(queuert_state_harness, 4)
        (blocker,) = await ops.create(ops.new_job(TYPE_B, id=blocker_id))
        async with adapter.transaction() as tx:
            (first,) = await ops.create(ops.new_job(TYPE_A, {"n": 1}, id=first_id), tx=tx)
            (added,) = await adapter.add_blockers([(first.id, [blocker_id])], tx=tx)
        (other,) = await ops.create(ops.new_job(TYPE_C, id=other_id))
        assert (blocker.id, first.id, other.id) == (blocker_id, first_id, other_id)
        assert added.job.id == first_id and added.open_blocker_chain_ids == [blocker_id]
        assert first.chain_id == first_id, "a chain's id is its first job's"

        assert (await ops.job(first_id)).id == first_id
        assert (await ops.chain(first_id)).id == first_id
        assert ids(await adapter.get_job_blockers(first_id)) == [blocker_id]
        blocked = await adapter.list_blocked_jobs(blocker_id)
        assert ids(blocked.items) == [first_id]
        listed = await adapter.list_jobs(JobFilter(job_ids=[first_id, blocker_id]), limit=10)
        assert set(ids(listed.items)) == {first_id, blocker_id}
        chains = await adapter.list_chains(ChainFilter(chain_ids=[first_id, other_id]), limit=10)
        assert set(ids(chains.items)) == {first_id, other_id}

        closed = await ops.close_job(blocker_id, output="done")
        assert closed.job.id == blocker_id and ids(closed.unblocked) == [first_id]
        assert (await ops.claim_one(first_id)).leased_by == WORKER
        renewal = await adapter.renew_leases({first_id: LONG_LEASE}, worker_id=WORKER)
        assert list(renewal.renewed) == [first_id] and renewal.lost == []
        async with adapter.transaction() as tx:
            await adapter.get_job(first_id, lock=True, tx=tx)
            (successor,) = await ops.create(ops.next_job(first, TYPE_B, id=next_id), tx=tx)
            continued = await adapter.complete_job(
                first_id,
                outcome="completed",
                worker_id=WORKER,
                succeeded_by_job_id=next_id,
                owner=WORKER,
                tx=tx,
            )
        assert successor.id == next_id and successor.chain_id == first_id
        assert continued.job.succeeded_by_job_id == next_id
        assert ids((await adapter.list_chain_jobs(first_id)).items) == [first_id, next_id]
        assert (await ops.chain(first_id)).tail.id == next_id

        triggered = await adapter.trigger_jobs([next_id, other_id])
        assert ids(triggered.triggered) == [next_id, other_id] and triggered.not_found == []
        (done,) = await adapter.complete_jobs([Completion(other_id, output=1)], worker_id=None)
        assert done is not None and done.job.id == other_id

        deleted = await adapter.delete_chains([first_id, other_id, blocker_id])
        assert deleted.references == []
        assert sorted(ids(deleted.deleted)) == sorted([first_id, other_id, blocker_id])
        assert await ops.all_jobs() == []
