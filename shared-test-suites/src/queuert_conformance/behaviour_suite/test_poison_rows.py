"""Poison rows, on every adapter: one job whose stored input cannot be read (not JSON, or JSON that no
longer fits its job type) never stops the queue.

A worker that claims such a job fails it at once, without retrying, with a readable error, and goes on
processing every other job; reads (``get_job``, ``get_chain``, ``list_jobs``, ``list_chains``,
``list_chain_jobs``) return the row with an ``UndecodableValue`` in place of the value instead of
failing the page. The same holds for a stored time that is not a time, where the store keeps times
as text: the job is failed at once and reads mark it ``unreadable``. The rows are corrupted through
``StateHarness.write_raw``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from queuert import Attempt, Chain, UndecodableValue
from queuert.observability import JobReaped

from queuert_conformance.applicability import not_applicable
from queuert_conformance.behaviour_suite.jobs import ALL, Echo, Num
from queuert_conformance.behaviour_suite.support import Env, MakeEnv

NOT_JSON = '{"value": 7'
"""A stored text that is not JSON (cut short)."""

UNREADABLE = {
    "not JSON": NOT_JSON,
    "JSON of another shape": '"seven"',
    "JSON missing a field": '{"amount": 7}',
}


NOT_A_TIME = "2000-01-01 not a time"
"""A stored time edited into text that is not a time (sorts before any time of this century)."""

BEFORE_YEAR_ONE = "0044-03-15 12:00:00+00 BC"
"""A time before the year 1 (in PostgreSQL's text form): stores whose time type reaches further than
Python's ``datetime`` can hold it, and then it cannot be read either. It is in the past, so due."""

ZERO_DATE = "0000-00-00 00:00:00"
"""MySQL's zero date, which MySQL and MariaDB store in a ``DATETIME`` unless the ``sql_mode`` has
``NO_ZERO_DATE``: not a date, and earlier than every date, so due."""

UNREADABLE_TIMES = (NOT_A_TIME, BEFORE_YEAR_ONE, ZERO_DATE)
"""What a case tries to store as an unreadable time, in order: the first the store accepts is used."""


async def _corrupt_time(env: Env, job_id: str, field: str) -> str:
    """Store the first of :data:`UNREADABLE_TIMES` the store can hold as the job's ``field``."""
    write_raw = env.harness.write_raw
    if write_raw is None:
        not_applicable("write_raw")
    for text in UNREADABLE_TIMES:
        if await write_raw(job_id, field, text):
            return text
    not_applicable("raw_time")


async def _corrupt(env: Env, job_id: str, text: str, which: str = "input") -> None:
    write_raw = env.harness.write_raw
    if write_raw is None:
        not_applicable("write_raw")
    if not await write_raw(job_id, which, text):
        not_applicable("raw_text" if which in ("input", "output") else "raw_time")


async def _handle(attempt: Attempt[Echo]) -> Num:
    return Num(attempt.input.value)


class TestPoisonRows:
    @pytest.mark.parametrize("case", sorted(UNREADABLE))
    async def test_an_unreadable_job_fails_at_once_and_the_others_run(
        self, queuert_env: MakeEnv, case: str
    ) -> None:
        env = await queuert_env(job_types=ALL)
        bad, *good = await env.start(*[Echo(Num(i)) for i in range(4)])
        await _corrupt(env, bad.id, UNREADABLE[case])
        async with env.worker({Echo: _handle}, concurrency=2):
            for chain in good:
                assert (await env.wait(chain)).value == chain.root.input.value
            closed = await env.wait_closed(bad)
        assert closed.outcome == "failed", "the unreadable job was not failed"
        job = await env.client.get_job(bad.id)
        assert job is not None
        assert job.attempt == 1, "an unreadable job was retried: retrying cannot help"
        assert job.last_attempt_error is not None
        assert "stored input cannot be read" in job.last_attempt_error, job.last_attempt_error

    @pytest.mark.parametrize("case", sorted(UNREADABLE))
    async def test_reads_return_the_unreadable_row_instead_of_failing(
        self, queuert_env: MakeEnv, case: str
    ) -> None:
        env = await queuert_env(job_types=ALL)
        bad, good = await env.start(Echo(Num(1)), Echo(Num(2)))
        await _corrupt(env, bad.id, UNREADABLE[case])
        client = env.client

        def unreadable(value: Any) -> UndecodableValue:
            assert isinstance(value, UndecodableValue), f"read {value!r}"
            assert value.reason
            return value

        job = await client.get_job(bad.id)
        assert job is not None
        raw = unreadable(job.input).raw
        if case == "not JSON":
            assert raw == NOT_JSON
        chain = await client.get_chain(bad.id)
        assert chain is not None
        unreadable(chain.root.input)
        listed_jobs = (await client.list_jobs(limit=10)).items
        assert {j.id for j in listed_jobs} >= {bad.id, good.id}
        unreadable(next(j for j in listed_jobs if j.id == bad.id).input)
        assert next(j for j in listed_jobs if j.id == good.id).input == Num(2)
        listed: list[Chain[Any]] = (await client.list_chains(limit=10)).items
        assert {c.id for c in listed} >= {bad.id, good.id}
        (only,) = (await client.list_chain_jobs(bad.id)).items
        unreadable(only.input)
        # and after the failed decode, a fresh write is visible to the next read
        (fresh,) = await env.start(Echo(Num(3)))
        assert await client.get_chain(fresh.id) is not None


class TestUnreadableTimes:
    """Where times are stored as text, one that is not a time (edited by hand) fails its job only."""

    @pytest.mark.parametrize("field", ["scheduled_at", "created_at"])
    async def test_the_job_fails_at_once_and_the_others_run(
        self, queuert_env: MakeEnv, field: str
    ) -> None:
        env = await queuert_env(job_types=ALL)
        bad, *good = await env.start(*[Echo(Num(i)) for i in range(4)])
        await _corrupt_time(env, bad.id, field)
        async with env.worker({Echo: _handle}, concurrency=2):
            for chain in good:
                assert (await env.wait(chain)).value == chain.root.input.value
            closed = await env.wait_closed(bad)
        assert closed.outcome == "failed", "the job with an unreadable time was not failed"
        job = await env.client.get_job(bad.id)
        assert job is not None
        assert job.attempt == 1, "a job with an unreadable time was retried: retrying cannot help"
        assert job.last_attempt_error is not None
        assert f"stored {field} cannot be read" in job.last_attempt_error, job.last_attempt_error
        assert job.unreadable is not None and field in job.unreadable

    async def test_reads_mark_the_job_instead_of_failing(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        bad, good = await env.start(Echo(Num(1)), Echo(Num(2)))
        text = await _corrupt_time(env, bad.id, "scheduled_at")
        client = env.client
        job = await client.get_job(bad.id)
        assert job is not None and job.unreadable is not None
        assert "stored scheduled_at cannot be read" in job.unreadable, job.unreadable
        if text == NOT_A_TIME:  # kept as text: shown as stored (a typed store shows its own form)
            assert repr(text) in job.unreadable, job.unreadable
        assert job.input == Num(1), "the readable fields are still read"
        chain = await client.get_chain(bad.id)
        assert chain is not None and chain.root.unreadable is not None
        listed_jobs = (await client.list_jobs(limit=10)).items
        assert {j.id for j in listed_jobs} >= {bad.id, good.id}
        assert next(j for j in listed_jobs if j.id == good.id).unreadable is None
        listed: list[Chain[Any]] = (await client.list_chains(limit=10)).items
        assert {c.id for c in listed} >= {bad.id, good.id}
        (only,) = (await client.list_chain_jobs(bad.id)).items
        assert only.unreadable is not None
        stats = await env.state.get_queue_stats()
        assert sum(s.ready for s in stats) >= 1, "queue statistics still read"
        # what an idle worker sleeps on: no error (a worker would fall into its recovery backoff)
        await env.state.next_due([Echo.type_name])
        await env.state.get_job_activity(window=timedelta(hours=1), buckets=4)

    async def test_an_unreadable_lease_is_reaped_with_the_others(
        self, queuert_env: MakeEnv
    ) -> None:
        """A dead worker's job whose lease end was edited into text that is not a time: the reaper
        returns it to ready with the other expired jobs (the lease is cleared, so the job is
        readable again and runs) instead of failing every reap that meets it."""
        env = await queuert_env(job_types=ALL)
        bad, good = await env.start(Echo(Num(1)), Echo(Num(2)))
        claim = await env.state.claim_jobs(
            leases={"b_echo": timedelta(milliseconds=1)}, limit=2, worker_id="dead-worker"
        )
        assert {j.id for j in claim.jobs} == {bad.id, good.id}
        await _corrupt_time(env, bad.id, "leased_until")
        job = await env.client.get_job(bad.id)
        assert job is not None and job.unreadable is not None, "reads mark the lease unreadable"
        assert "leased_until" in job.unreadable, job.unreadable
        async with env.worker({Echo: _handle}, reap_interval=0.05):
            for chain in (bad, good):
                result = await env.wait(chain, what="a dead worker's job (its lease is reaped)")
                assert result.value == chain.root.input.value
        reaped = {r.job.id: r.leased_by for r in env.events.of(JobReaped)}
        assert reaped == {bad.id: "dead-worker", good.id: "dead-worker"}, reaped

    @pytest.mark.parametrize("order", ["desc", "asc"])
    async def test_paging_goes_on_past_unreadable_creation_times(
        self, queuert_env: MakeEnv, order: str
    ) -> None:
        """A page ending on a job whose ``created_at`` cannot be read has a cursor at the time that
        job reads as (1970), not where the store sorts what it holds: the next page still starts
        right after it, so paging a page at a time lists every job and chain once, and ends."""
        env = await queuert_env(job_types=ALL)
        chains = await env.start(*[Echo(Num(i)) for i in range(4)])
        for chain in chains[1:3]:
            await _corrupt_time(env, chain.id, "created_at")
        expected = sorted(c.id for c in chains)
        for name in ("list_jobs", "list_chains"):
            lister = getattr(env.client, name)
            seen: list[str] = []
            cursor = None
            for _ in range(len(chains) + 3):
                page = await lister(limit=1, order=order, cursor=cursor)
                seen += [item.id for item in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert sorted(seen) == expected, f"{name} ({order}) paged through {seen}"
