"""Rows, the clock and JSON parameters as the adapter makes them: the hot paths give what a plain
reading gives."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from queuert.json import dumps, loads_stored
from queuert.state import READ_OUTPUT, STORED_FIELDS, Completion, StoredJob, derive_status
from queuert_sqlite import SqliteStateAdapter, _time
from queuert_sqlite._rows import NCOLS, job_from_row
from queuert_sqlite._sql import json_param
from queuert_sqlite._time import format_ts, parse_ts
from sqlite_helpers import LEASE, TYPE, new_job

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_micros = st.integers(0, 253402300799_999999)  # up to 9999-12-31 23:59:59.999999


@settings(max_examples=300, deadline=None)
@given(readings=st.lists(_micros | st.integers(1_700_000_000_000_000, 1_700_000_003_000_000)))
def test_now_reads_the_clock_as_text_and_datetime(readings: list[int]) -> None:
    # readings jump back and forth and repeat seconds: the per-second calendar must follow
    with pytest.MonkeyPatch.context() as patch:
        for micros in readings:
            patch.setattr(time, "time_ns", lambda m=micros: m * 1000 + 999)
            text, at = _time.now()
            expected = EPOCH + timedelta(microseconds=micros)
            assert at == expected and at.tzinfo is UTC
            assert text == format_ts(expected) and parse_ts(text) == at


_stamp = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
).map(format_ts)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@st.composite
def _rows(draw: st.DrawFn) -> tuple[Any, ...]:
    created = draw(_stamp)
    values: dict[str, Any] = {
        "id": draw(st.text(min_size=1, max_size=4)),
        "type_name": "t",
        "chain_id": "c",
        "chain_type_name": "t",
        "chain_index": draw(st.integers(0, 3)),
        "input": dumps(draw(_json)),
        "output": draw(st.none() | _json.map(dumps)),
        "outcome": draw(st.sampled_from([None, "completed", "failed", "cancelled"])),
        "created_at": created,
        "scheduled_at": draw(st.just(created) | _stamp),
        "completed_at": draw(st.none() | _stamp),
        "completed_by": draw(st.none() | st.just("w")),
        "succeeded_by_job_id": draw(st.none() | st.just("s")),
        "attempt": draw(st.integers(0, 5)),
        "last_attempt_at": draw(st.none() | _stamp),
        "last_attempt_error": draw(st.none() | st.just("e")),
        "leased_by": draw(st.none() | st.just("w")),
        "leased_until": draw(st.none() | _stamp),
        "blocked": draw(st.sampled_from([0, 1])),
        "deduplication_key": draw(st.none() | st.just("k")),
        "chain_trace_context": draw(st.none() | st.just("ct")),
        "trace_context": draw(st.none() | st.just("tc")),
        "priority": draw(st.integers(-(2**31), 2**31 - 1)),
        "limit_key": draw(st.none() | st.just("l")),
    }
    return tuple(values[name] for name in STORED_FIELDS)


def _plain(row: tuple[Any, ...], now: datetime) -> StoredJob:
    """The job of ``row`` through StoredJob's constructor, one field at a time."""
    values = dict(zip(STORED_FIELDS, row, strict=True))
    for name in ("created_at", "scheduled_at", "completed_at", "last_attempt_at", "leased_until"):
        if values[name] is not None:
            values[name] = parse_ts(values[name])
    values["input"] = loads_stored(values["input"])
    if values["output"] is not None:
        values["output"] = loads_stored(values["output"])
    values["blocked"] = bool(values["blocked"])
    status = derive_status(
        outcome=values["outcome"],
        succeeded_by_job_id=values["succeeded_by_job_id"],
        leased_until=values["leased_until"],
        blocked=values["blocked"],
        scheduled_at=values["scheduled_at"],
        now=now,
    )
    return StoredJob(status=status, **values)


@settings(max_examples=200, deadline=None)
@given(row=_rows(), now=_stamp, before=st.integers(0, 3), after=st.integers(0, 3))
def test_a_row_reads_as_the_constructor_builds_it(
    row: tuple[Any, ...], now: str, before: int, after: int
) -> None:
    now_dt = parse_ts(now)
    expected = _plain(row, now_dt)
    assert job_from_row(row, now_dt) == expected
    padded = ("x",) * before + row + ("y",) * after  # the columns of a wider select
    job = job_from_row(padded, now_dt, before)
    assert job == expected and repr(job) == repr(expected) and job.unreadable is None
    assert job_from_row(row, now_dt, 0, READ_OUTPUT) == expected
    given_output = {"given": True}
    assert job_from_row(row, now_dt, 0, given_output).output is given_output


def test_a_row_whose_time_is_no_time_still_reads() -> None:
    at = "2026-01-02 03:04:05.000006"
    row = list(next(iter([_fixed_row(at)])))
    row[STORED_FIELDS.index("last_attempt_at")] = "yesterday"
    job = job_from_row(tuple(row), parse_ts(at))
    assert job.last_attempt_at is None and job.unreadable is not None
    assert job.unreadable[0] == "last_attempt_at"


def _fixed_row(at: str) -> tuple[Any, ...]:
    values = dict.fromkeys(STORED_FIELDS)
    values.update(
        id="j", type_name="t", chain_id="j", chain_type_name="t", chain_index=0, input="{}",
        created_at=at, scheduled_at=at, attempt=0, blocked=0, priority=0,
    )  # fmt: skip
    row = tuple(values[name] for name in STORED_FIELDS)
    assert len(row) == NCOLS
    return row


async def test_a_group_completion_returns_each_job_with_its_output(
    adapter: SqliteStateAdapter,
) -> None:
    await adapter.create_jobs([new_job(i) for i in range(4)])
    claimed = await adapter.claim_jobs(leases=LEASE, limit=4, worker_id="w")
    jobs = claimed.jobs
    assert len(jobs) == 4 and jobs[0].type_name == TYPE
    outputs: list[Any] = [{"n": 0}, [1, "two"], None, 3]
    completions = [
        Completion(jobs[0].id, output=outputs[0], output_text=dumps(outputs[0])),
        Completion(jobs[1].id, output=outputs[1]),  # no text from the core: read back
        Completion(jobs[2].id, outcome="failed", error="boom"),
        Completion(jobs[3].id, output=outputs[3], output_text=dumps(outputs[3])),
    ]
    results = await adapter.complete_jobs(completions, worker_id="w", owner="w")
    for job, result, output in zip(jobs, results, outputs, strict=True):
        assert result is not None and result.job.id == job.id
        assert result.job.output == output
        assert result.job == await adapter.get_job(job.id)
    assert results[0] is not None and results[0].job.output is outputs[0]


async def test_a_claimed_job_whose_attempt_time_is_no_time_closes_read_back_whole(
    adapter: SqliteStateAdapter, db_path: Path
) -> None:
    """A group completion builds a claimed job's closed job from the claimed one and the row's
    attempt time; a time edited by hand into something that is not one reads back the whole row
    instead (marked ``unreadable``, as every read marks it)."""
    await adapter.create_jobs([new_job(0)])
    (job,) = (await adapter.claim_jobs(leases=LEASE, limit=1, worker_id="w")).jobs
    with contextlib.closing(sqlite3.connect(db_path, timeout=10)) as conn:
        table = f"{adapter.table_prefix}job"
        conn.execute(f"UPDATE {table} SET last_attempt_at = 'x' WHERE id = ?", (job.id,))
        conn.commit()
    (result,) = await adapter.complete_jobs(
        [Completion(job.id, output=1, claimed=job)], worker_id="w", owner="w"
    )
    assert result is not None and result.job.unreadable is not None
    assert result.job.last_attempt_at is None and result.job.status == "completed"
    assert result.job == await adapter.get_job(job.id)


async def test_a_group_completion_naming_a_job_twice_reads_what_was_stored(
    adapter: SqliteStateAdapter,
) -> None:
    (created,) = await adapter.create_jobs([new_job(0)])
    await adapter.claim_jobs(leases=LEASE, limit=1, worker_id="w")
    job_id = created.job.id
    first, second = {"first": 1}, {"second": 2}
    results = await adapter.complete_jobs(
        [
            Completion(job_id, output=first, output_text=dumps(first)),
            Completion(job_id, output=second, output_text=dumps(second)),
        ],
        worker_id="w",
        owner="w",
    )
    stored = await adapter.get_job(job_id)
    assert stored is not None and stored.output in (first, second)
    assert [r.job if r is not None else None for r in results] == [stored, stored]


_param = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=_param)
def test_json_params_are_the_compact_text_sqlite_reads_back(value: Any) -> None:
    import json

    text = json_param(value)
    assert text == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert json.loads(text) == value
