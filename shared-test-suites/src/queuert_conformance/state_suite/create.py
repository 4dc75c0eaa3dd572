"""create_jobs: chain starts, continuations, schedules, deduplication and caller ids."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from queuert.errors import DuplicateJobIdError
from queuert.json import JsonValue
from queuert.schedule import Deduplication, Schedule
from queuert.state import JobFilter, StoredJob

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    HOUR,
    TYPE_A,
    TYPE_B,
    Ops,
    assert_about,
    assert_status,
    assert_utc,
    ids,
    utcnow,
    whole_second,
)

__all__ = ["TestCreateJobs", "TestDeduplication"]

COMPLEX_JSON: JsonValue = {
    "text": 'héllo wörld ✓ "quoted" \\ back\nslash',
    "int": 42,
    "negative": -7,
    "big": 9007199254740993,
    "float": 3.25,
    "bool": True,
    "false": False,
    "null": None,
    "empty_list": [],
    "empty_object": {},
    "nested": {"list": [1, "two", [3.5, {"four": None}]], "deep": {"a": {"b": {"c": "d"}}}},
}


class TestCreateJobs:
    async def test_first_job_is_its_own_chain_with_every_field_persisted(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        job_id = ops.new_id()
        before = utcnow()
        created = await queuert_state_harness.adapter.create_jobs(
            [
                ops.new_job(
                    TYPE_A,
                    {"n": 1},
                    id=job_id,
                    chain_type_name=TYPE_A,
                    chain_trace_context="chain-trace",
                    trace_context="job-trace",
                )
            ]
        )
        assert len(created) == 1 and created[0].deduplicated is False
        job = created[0].job
        assert job.id == job_id, "the caller's id must be used"
        assert job.chain_id == job_id, "a chain's first job has chain_id == its own id"
        assert job.chain_index == 0
        assert job.type_name == TYPE_A and job.chain_type_name == TYPE_A
        assert job.input == {"n": 1}
        assert job.output is None and job.outcome is None
        assert_status(job, "ready", "a new job without schedule")
        assert job.attempt == 0 and job.last_attempt_at is None and job.last_attempt_error is None
        assert job.leased_by is None and job.leased_until is None
        assert job.completed_at is None and job.completed_by is None
        assert job.succeeded_by_job_id is None
        assert job.blocked is False
        assert job.deduplication_key is None
        assert job.chain_trace_context == "chain-trace" and job.trace_context == "job-trace"
        assert_utc(job.created_at, "created_at")
        assert_utc(job.scheduled_at, "scheduled_at")
        assert_about(job.created_at, before, "created_at")
        assert job.scheduled_at <= job.created_at + timedelta(seconds=1), (
            "a job without schedule is scheduled at its creation time"
        )
        read = await ops.job(job_id)
        assert read == job, f"get_job differs from what create_jobs returned:\n{read}\n{job}"

    async def test_empty_batch_returns_empty_list(
        self, queuert_state_harness: StateHarness
    ) -> None:
        assert await queuert_state_harness.adapter.create_jobs([]) == []

    async def test_complex_json_input_round_trips(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        values: list[JsonValue] = [COMPLEX_JSON, None, [1, 2, 3], "plain", 0, 1.5, True]
        for value in values:
            job = await ops.start(TYPE_A, value)
            assert job.input == value, (
                f"create_jobs returned input {job.input!r}, expected {value!r}"
            )
            assert (await ops.job(job.id)).input == value, f"stored input differs for {value!r}"

    async def test_stored_input_is_not_aliased_with_caller_objects(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        value: dict[str, Any] = {"items": [1, 2], "inner": {"k": "v"}}
        job = await ops.start(TYPE_A, value)
        value["items"].append(3)
        value["inner"]["k"] = "changed"
        assert isinstance(job.input, dict)
        job.input["items"].append(99)  # type: ignore[union-attr]
        stored = await ops.job(job.id)
        assert stored.input == {"items": [1, 2], "inner": {"k": "v"}}, (
            "changing the caller's input object or a returned job's input changed the stored input"
        )

    async def test_batch_results_follow_input_order(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        batch = [ops.new_job(TYPE_A if i % 2 else TYPE_B, {"i": i}) for i in range(7)]
        created = await queuert_state_harness.adapter.create_jobs(batch)
        assert [c.job.id for c in created] == [j.id for j in batch]
        assert [c.job.input for c in created] == [{"i": i} for i in range(7)]
        assert all(not c.deduplicated for c in created)
        assert len({c.job.id for c in created}) == 7

    async def test_continuation_joins_the_chain_at_the_next_index(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        first = await ops.start(TYPE_A, {"step": 0}, chain_trace_context="ctx")
        (second,) = await ops.create(ops.next_job(first, TYPE_B, {"step": 1}))
        assert second.chain_id == first.id
        assert second.chain_index == 1
        assert second.chain_type_name == TYPE_A, "a continuation keeps the chain's type"
        assert second.type_name == TYPE_B
        (third,) = await ops.create(ops.next_job(second, TYPE_A, {"step": 2}))
        assert third.chain_index == 2 and third.chain_id == first.id

    async def test_continuation_at_an_existing_position_returns_the_existing_job(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        first = await ops.start(TYPE_A)
        (second,) = await ops.create(ops.next_job(first, TYPE_B, {"v": 1}))
        again = await queuert_state_harness.adapter.create_jobs(
            [ops.next_job(first, TYPE_B, {"v": 2})]
        )
        assert again[0].deduplicated is True, "a second job at the same (chain_id, chain_index)"
        assert again[0].job.id == second.id
        assert again[0].job.input == {"v": 1}, "the existing job is returned unchanged"
        page = await queuert_state_harness.adapter.list_chain_jobs(first.id)
        assert [j.id for j in page.items] == [first.id, second.id]

    async def test_continuations_at_one_position_in_one_batch_insert_one_job(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        first = await ops.start(TYPE_A)
        batch = [ops.next_job(first, TYPE_B, {"v": 1}), ops.next_job(first, TYPE_B, {"v": 2})]
        created = await queuert_state_harness.adapter.create_jobs(batch)
        assert [c.deduplicated for c in created] == [False, True]
        assert created[1].job.id == created[0].job.id == batch[0].id

    async def test_continuation_in_the_same_batch_as_its_chain_start(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        first = ops.new_job(TYPE_A)
        created = await queuert_state_harness.adapter.create_jobs([first])
        cont = ops.next_job(created[0].job, TYPE_B)
        another = ops.new_job(TYPE_B)
        result = await queuert_state_harness.adapter.create_jobs([another, cont])
        assert [c.job.id for c in result] == [another.id, cont.id]
        assert result[1].job.chain_id == first.id

    async def test_schedule_after_makes_the_job_scheduled(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        before = utcnow()
        job = await ops.start(TYPE_A, schedule=Schedule(after=HOUR))
        assert_status(job, "scheduled")
        assert_about(job.scheduled_at, before + HOUR, "scheduled_at of Schedule(after=1h)")
        assert job.scheduled_at - job.created_at == HOUR, (
            "after= counts from the store's now (the creation time)"
        )

    async def test_schedule_at_in_the_future_is_stored_exactly(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        at = whole_second(utcnow() + 2 * HOUR)
        job = await ops.start(TYPE_A, schedule=Schedule(at=at))
        assert_status(job, "scheduled")
        assert job.scheduled_at == at
        assert_utc(job.scheduled_at, "scheduled_at")

    async def test_schedule_at_in_the_past_is_clamped_to_now(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        job = await ops.start(TYPE_A, schedule=Schedule(at=utcnow() - 24 * HOUR))
        assert_status(job, "ready")
        assert job.scheduled_at >= job.created_at, (
            f"a past `at` must be clamped to now: scheduled_at={job.scheduled_at} "
            f"created_at={job.created_at}"
        )

    async def test_continuation_schedule(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        first = await ops.start(TYPE_A)
        (second,) = await ops.create(ops.next_job(first, TYPE_B, schedule=Schedule(after=HOUR)))
        assert_status(second, "scheduled")

    async def test_trace_contexts_round_trip(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        first = await ops.start(
            TYPE_A, chain_trace_context="00-chain-01", trace_context="00-first-01"
        )
        (second,) = await ops.create(ops.next_job(first, TYPE_B, trace_context="00-second-01"))
        stored_first = await ops.job(first.id)
        stored_second = await ops.job(second.id)
        assert (stored_first.chain_trace_context, stored_first.trace_context) == (
            "00-chain-01",
            "00-first-01",
        )
        assert (stored_second.chain_trace_context, stored_second.trace_context) == (
            "00-chain-01",
            "00-second-01",
        )
        plain = await ops.start(TYPE_A)
        assert (plain.chain_trace_context, plain.trace_context) == (None, None)

    async def test_caller_id_already_used_raises_and_writes_nothing(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        existing = await ops.start(TYPE_A)
        fresh = ops.new_job(TYPE_B)
        with pytest.raises(DuplicateJobIdError) as caught:
            await queuert_state_harness.adapter.create_jobs(
                [fresh, ops.new_job(TYPE_B, id=existing.id)]
            )
        assert caught.value.job_id == existing.id
        assert await queuert_state_harness.adapter.get_job(fresh.id) is None, (
            "a batch that raised DuplicateJobIdError must write nothing"
        )
        assert (await ops.job(existing.id)).type_name == TYPE_A, "the existing job is untouched"

    async def test_duplicate_ids_within_one_batch_raise(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        job_id = ops.new_id()
        with pytest.raises(DuplicateJobIdError):
            await queuert_state_harness.adapter.create_jobs(
                [ops.new_job(TYPE_A, id=job_id), ops.new_job(TYPE_B, id=job_id)]
            )
        assert await queuert_state_harness.adapter.get_job(job_id) is None

    async def test_chain_start_with_the_id_of_a_continuation_raises(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        first = await ops.start(TYPE_A)
        (second,) = await ops.create(ops.next_job(first, TYPE_B))
        fresh = ops.new_job(TYPE_B)
        with pytest.raises(DuplicateJobIdError) as caught:
            await queuert_state_harness.adapter.create_jobs(
                [fresh, ops.new_job(TYPE_A, id=second.id)]
            )
        assert caught.value.job_id == second.id
        assert await queuert_state_harness.adapter.get_job(fresh.id) is None
        assert (await ops.job(second.id)).chain_id == first.id, "the continuation is untouched"

    async def test_continuation_with_an_id_in_use_raises(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        first = await ops.start(TYPE_A)
        other = await ops.start(TYPE_B)
        with pytest.raises(DuplicateJobIdError):
            await ops.create(ops.next_job(first, TYPE_B, id=other.id))
        page = await queuert_state_harness.adapter.list_chain_jobs(first.id)
        assert [j.id for j in page.items] == [first.id]

    async def test_jobs_created_in_a_transaction_are_visible_in_it(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with adapter.transaction() as tx:
            job = await ops.start(TYPE_A, tx=tx)
            assert (await adapter.get_job(job.id, tx=tx)) == job
            jobs = await ops.all_jobs(JobFilter(job_ids=[job.id]), tx=tx)
            assert [j.id for j in jobs] == [job.id]
        assert await adapter.get_job(job.id) is not None


class TestDeduplication:
    # Deduplication is keyed on the CHAIN: (chain type, key) among first jobs, the chain's status being
    # its tail's. A chain whose first job continued is still open and still deduplicates.

    async def test_same_key_returns_the_open_chain(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        first = ops.new_job(TYPE_A, {"v": 1}, deduplication=Deduplication("k1"))
        (a,) = await adapter.create_jobs([first])
        assert a.deduplicated is False
        assert a.job.deduplication_key == "k1"
        duplicate = ops.new_job(TYPE_A, {"v": 2}, deduplication=Deduplication("k1"))
        (b,) = await adapter.create_jobs([duplicate])
        assert b.deduplicated is True
        assert b.job.id == first.id and b.job.input == {"v": 1}
        assert await adapter.get_job(duplicate.id) is None, "a deduplicated start inserts nothing"

    async def test_keys_are_namespaced_by_chain_type(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        (a,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("same"))])
        (b,) = await adapter.create_jobs([ops.new_job(TYPE_B, deduplication=Deduplication("same"))])
        assert not a.deduplicated and not b.deduplicated
        assert a.job.id != b.job.id

    async def test_different_keys_do_not_match(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k1"))])
        (b,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k2"))])
        (c,) = await adapter.create_jobs([ops.new_job(TYPE_A)])
        assert not b.deduplicated and not c.deduplicated

    async def test_open_scope_ignores_closed_chains(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        (a,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        await ops.close_job(a.job.id, output={"done": True})
        (b,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        assert b.deduplicated is False, "scope='open' must not match a closed chain"
        assert b.job.id != a.job.id

    @pytest.mark.parametrize("outcome", ["failed", "cancelled"])
    async def test_failed_and_cancelled_chains_are_closed_for_open_scope(
        self, queuert_state_harness: StateHarness, outcome: str
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        (a,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        await ops.close_job(a.job.id, outcome, error="boom")  # type: ignore[arg-type]
        (b,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        assert b.deduplicated is False, (
            f"a {outcome} chain is closed and must not match scope='open'"
        )

    async def test_open_scope_is_keyed_on_the_chain_not_the_first_job(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        (a,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        successor, _ = await ops.continue_with(a.job, TYPE_B)
        assert_status(await ops.job(a.job.id), "continued")
        (b,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        assert b.deduplicated is True, (
            "the chain is still open (its first job continued, its tail is open): it must deduplicate"
        )
        assert b.job.id == a.job.id, "deduplication returns the chain's first job"
        await ops.close_job(successor.id, output=1)
        (c,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        assert c.deduplicated is False, (
            "after the tail closed the chain, scope='open' must not match"
        )

    async def test_any_scope_matches_closed_chains(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        (a,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        await ops.close_job(a.job.id, output=1)
        (b,) = await adapter.create_jobs(
            [ops.new_job(TYPE_A, deduplication=Deduplication("k", scope="any"))]
        )
        assert b.deduplicated is True and b.job.id == a.job.id

    async def test_newest_match_wins(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        (old,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        await ops.close_job(old.job.id, output=1)
        (newer,) = await adapter.create_jobs(
            [ops.new_job(TYPE_A, deduplication=Deduplication("k"))]
        )
        await ops.close_job(newer.job.id, output=2)
        (hit,) = await adapter.create_jobs(
            [ops.new_job(TYPE_A, deduplication=Deduplication("k", scope="any"))]
        )
        assert hit.deduplicated and hit.job.id == newer.job.id, "the newest matching chain wins"
        (newest,) = await adapter.create_jobs(
            [ops.new_job(TYPE_A, deduplication=Deduplication("k"))]
        )
        assert not newest.deduplicated
        (hit2,) = await adapter.create_jobs(
            [ops.new_job(TYPE_A, deduplication=Deduplication("k", scope="any"))]
        )
        assert hit2.job.id == newest.job.id

    async def test_the_newest_of_several_open_matches_wins(
        self, queuert_state_harness: StateHarness
    ) -> None:
        """Several open chains with one key (each started excluding the others): the newest by
        (``created_at``, ``id``) of the first job wins, also among chains of one transaction."""
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter

        async def start(*excluded: StoredJob, tx: Any = None) -> StoredJob:
            dedup = Deduplication("k", exclude_chain_ids=[j.id for j in excluded])
            (created,) = await adapter.create_jobs(
                [ops.new_job(TYPE_A, deduplication=dedup)], tx=tx
            )
            assert not created.deduplicated
            return created.job

        async def winner(*excluded: StoredJob) -> str:
            dedup = Deduplication("k", exclude_chain_ids=[j.id for j in excluded])
            (hit,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=dedup)])
            assert hit.deduplicated, "an open chain with the key exists"
            return hit.job.id

        def age(job: StoredJob) -> tuple[Any, str]:
            return (job.created_at, job.id)

        a = await start()
        b = await start(a)
        assert await winner() == max(a, b, key=age).id
        async with adapter.transaction() as tx:
            c = await start(a, b, tx=tx)
            d = await start(a, b, c, tx=tx)
        started = [a, b, c, d]
        for earlier, later in pairwise(started):
            assert earlier.created_at <= later.created_at, "a later start is never older"
        # Starts the store's clock gives one time (c and d, with a clock per transaction) are
        # ordered by id: the later start is the newer where the id policy makes growing ids, as
        # UUIDv7 does. Exclude the winner each time: the next newest wins.
        excluded: list[StoredJob] = []
        for newest in sorted(started, key=age, reverse=True):
            assert await winner(*excluded) == newest.id, (
                f"the newest by (created_at, id) of {ids(started)} without {ids(excluded)} wins"
            )
            excluded.append(newest)

    async def test_open_scope_picks_the_open_chain_over_a_newer_closed_one(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        (open_one,) = await adapter.create_jobs(
            [ops.new_job(TYPE_A, deduplication=Deduplication("k"))]
        )
        (closed,) = await adapter.create_jobs(
            [
                ops.new_job(
                    TYPE_A, deduplication=Deduplication("k", exclude_chain_ids=[open_one.job.id])
                )
            ]
        )
        assert not closed.deduplicated
        await ops.close_job(closed.job.id, output=None)
        (hit,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        assert hit.deduplicated and hit.job.id == open_one.job.id

    async def test_exclude_chain_ids(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        (a,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        (b,) = await adapter.create_jobs(
            [ops.new_job(TYPE_A, deduplication=Deduplication("k", exclude_chain_ids=[a.job.id]))]
        )
        assert b.deduplicated is False, "an excluded chain must not match"
        (c,) = await adapter.create_jobs(
            [ops.new_job(TYPE_A, deduplication=Deduplication("k", exclude_chain_ids=[a.job.id]))]
        )
        assert c.deduplicated is True and c.job.id == b.job.id, "other chains still match"

    async def test_window_matches_only_recent_chains(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        (a,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        (within_window,) = await adapter.create_jobs(
            [ops.new_job(TYPE_A, deduplication=Deduplication("k", window=HOUR))]
        )
        assert within_window.deduplicated and within_window.job.id == a.job.id
        await asyncio.sleep(0.1)  # let the store's clock move past a tiny window (not a race)
        (outside,) = await adapter.create_jobs(
            [
                ops.new_job(
                    TYPE_A, deduplication=Deduplication("k", window=timedelta(milliseconds=20))
                )
            ]
        )
        assert outside.deduplicated is False, "a chain created before the window must not match"

    async def test_window_combined_with_any_scope(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        (a,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        await ops.close_job(a.job.id, output=None)
        (hit,) = await adapter.create_jobs(
            [ops.new_job(TYPE_A, deduplication=Deduplication("k", scope="any", window=HOUR))]
        )
        assert hit.deduplicated and hit.job.id == a.job.id
        await asyncio.sleep(0.1)  # let the store's clock move past a tiny window (not a race)
        (miss,) = await adapter.create_jobs(
            [
                ops.new_job(
                    TYPE_A,
                    deduplication=Deduplication(
                        "k", scope="any", window=timedelta(milliseconds=20)
                    ),
                )
            ]
        )
        assert miss.deduplicated is False

    async def test_deduplication_wins_over_a_caller_id(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        (a,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        wanted = ops.new_id()
        (b,) = await adapter.create_jobs(
            [ops.new_job(TYPE_A, id=wanted, deduplication=Deduplication("k"))]
        )
        assert b.deduplicated and b.job.id == a.job.id
        assert await adapter.get_job(wanted) is None

    async def test_deduplication_hit_with_an_id_in_use_is_not_an_error(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        (a,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        (b,) = await adapter.create_jobs(
            [ops.new_job(TYPE_A, id=a.job.id, deduplication=Deduplication("k"))]
        )
        assert b.deduplicated and b.job.id == a.job.id

    async def test_same_key_twice_in_one_batch(self, queuert_state_harness: StateHarness) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        batch = [
            ops.new_job(TYPE_A, {"i": 0}, deduplication=Deduplication("k")),
            ops.new_job(TYPE_B, {"i": 1}, deduplication=Deduplication("k")),
            ops.new_job(TYPE_A, {"i": 2}, deduplication=Deduplication("k")),
            ops.new_job(TYPE_A, {"i": 3}),
        ]
        created = await adapter.create_jobs(batch)
        assert [c.deduplicated for c in created] == [False, False, True, False]
        assert created[2].job.id == batch[0].id, "a later item dedupes to the first with its key"
        assert await adapter.get_job(batch[2].id) is None

    async def test_batch_item_matching_an_existing_chain(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        (a,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        created = await adapter.create_jobs(
            [
                ops.new_job(TYPE_A, deduplication=Deduplication("k")),
                ops.new_job(TYPE_A, deduplication=Deduplication("k")),
            ]
        )
        assert [c.deduplicated for c in created] == [True, True]
        assert {c.job.id for c in created} == {a.job.id}

    async def test_deduplication_sees_the_transactions_own_chains(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        async with adapter.transaction() as tx:
            (a,) = await adapter.create_jobs(
                [ops.new_job(TYPE_A, deduplication=Deduplication("k"))], tx=tx
            )
            (b,) = await adapter.create_jobs(
                [ops.new_job(TYPE_A, deduplication=Deduplication("k"))], tx=tx
            )
        assert not a.deduplicated and b.deduplicated and b.job.id == a.job.id

    async def test_deduplicated_result_is_the_first_job_with_current_status(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        (a,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        await ops.continue_with(a.job, TYPE_B)
        (b,) = await adapter.create_jobs([ops.new_job(TYPE_A, deduplication=Deduplication("k"))])
        job: StoredJob = b.job
        assert job.id == a.job.id and job.chain_index == 0
        assert_status(job, "continued", "the returned first job")
