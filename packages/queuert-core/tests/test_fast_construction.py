"""Hot paths build StoredJob, Job and Chain from a dict of their fields instead of calling
``__init__`` (``queuert._fastinit.from_fields``). These tests pin that what they build is the same
object ``__init__`` builds: every field, in declaration order, nothing else, and still frozen."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from queuert import Client, EntryJobType
from queuert._mapping import Mapper
from queuert.codec import DefaultCodec
from queuert.in_memory.state import InMemoryStateAdapter, _Row
from queuert.job_types import JobTypeRegistry
from queuert.json import JsonValue
from queuert.models import Chain, Job
from queuert.schedule import Deduplication, Schedule
from queuert.state import (
    STORED_FIELDS,
    CreatedJob,
    JobStatus,
    NewJob,
    Outcome,
    StoredChain,
    StoredJob,
    inserted_job,
    inserted_jobs,
)

moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(timezone.utc)
)
maybe_text = st.none() | st.text(max_size=5)


@st.composite
def stored_jobs(draw: st.DrawFn) -> StoredJob:
    outcome: Outcome | None = draw(st.sampled_from([None, "completed", "failed", "cancelled"]))
    values = st.none() | st.integers() | st.dictionaries(st.text(max_size=3), st.integers())
    return StoredJob(
        id=draw(st.uuids().map(str)),
        type_name=draw(st.sampled_from(["a", "b"])),
        chain_id=draw(st.uuids().map(str)),
        chain_type_name="a",
        chain_index=draw(st.integers(0, 5)),
        input=cast(JsonValue, draw(values)),
        output=cast(JsonValue, draw(values)),
        status=draw(st.sampled_from(["ready", "running", "completed", "continued", "blocked"])),
        outcome=outcome,
        created_at=draw(moments),
        scheduled_at=draw(moments),
        completed_at=draw(st.none() | moments),
        completed_by=draw(maybe_text),
        succeeded_by_job_id=draw(st.none() | st.uuids().map(str)),
        attempt=draw(st.integers(0, 9)),
        last_attempt_at=draw(st.none() | moments),
        last_attempt_error=draw(maybe_text),
        leased_by=draw(maybe_text),
        leased_until=draw(st.none() | moments),
        blocked=draw(st.booleans()),
        deduplication_key=draw(maybe_text),
        chain_trace_context=draw(maybe_text),
        trace_context=draw(maybe_text),
    )


def _names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _same_as_init(built: Any, cls: type[Any]) -> None:
    assert type(built) is cls
    assert list(vars(built)) == _names(cls), "every field, in declaration order, nothing else"
    assert built == cls(**vars(built))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.id = "changed"


@given(
    continuation=st.booleans(),
    schedule=st.none() | st.builds(Schedule, after=st.timedeltas(timedelta(0), timedelta(1))),
    dedup=st.none()
    | st.builds(
        Deduplication,
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=4),
    ),
    contexts=st.tuples(maybe_text, maybe_text),
    when=moments,
    later=st.booleans(),
)
def test_inserted_job_is_the_job_init_would_build(
    continuation: bool,
    schedule: Schedule | None,
    dedup: Deduplication | None,
    contexts: tuple[str | None, str | None],
    when: datetime,
    later: bool,
) -> None:
    new = NewJob(
        id="j1",
        type_name="b",
        chain_type_name="a",
        input={"k": [1]},
        chain_id="c1" if continuation else None,
        chain_index=3 if continuation else 0,
        schedule=schedule,
        deduplication=None if continuation else dedup,
        chain_trace_context=contexts[0],
        trace_context=contexts[1],
    )
    at = when + timedelta(seconds=5) if later else when
    status: JobStatus = "scheduled" if later else "ready"
    job = inserted_job(new, input={"k": [1]}, created_at=when, scheduled_at=at, status=status)
    _same_as_init(job, StoredJob)
    assert job == StoredJob(
        id="j1",
        type_name="b",
        chain_id="c1" if continuation else "j1",
        chain_type_name="a",
        chain_index=3 if continuation else 0,
        input={"k": [1]},
        output=None,
        status=status,
        outcome=None,
        created_at=when,
        scheduled_at=at,
        completed_at=None,
        completed_by=None,
        succeeded_by_job_id=None,
        attempt=0,
        last_attempt_at=None,
        last_attempt_error=None,
        leased_by=None,
        leased_until=None,
        blocked=False,
        deduplication_key=dedup.key if dedup is not None and not continuation else None,
        chain_trace_context=contexts[0],
        trace_context=contexts[1],
    )


# Two stored jobs of some twenty drawn fields each take long to generate when several test runners
# share the machine; that says nothing about the code under test, so the speed check is off.
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(root=stored_jobs(), tail=stored_jobs(), same=st.booleans(), deduplicated=st.booleans())
def test_client_views_are_the_objects_init_would_build(
    root: StoredJob, tail: StoredJob, same: bool, deduplicated: bool
) -> None:
    mapper = Mapper(JobTypeRegistry([]), DefaultCodec())
    if same:
        tail = root

    def job_by_init(stored: StoredJob) -> Job:
        return Job(**{name: getattr(stored, name) for name in _names(Job)})

    job = mapper.to_job(root)
    _same_as_init(job, Job)
    assert job == job_by_init(root)

    chain = mapper.to_chain(StoredChain(root=root, tail=tail), deduplicated=deduplicated)
    _same_as_init(chain, Chain)
    closed = tail.closes_chain
    assert chain == Chain(
        id=root.id,
        type_name=root.type_name,
        status="closed" if closed else "open",
        outcome=tail.outcome if closed else None,
        root=job_by_init(root),
        tail=job_by_init(tail),
        deduplicated=deduplicated,
        _output=tail.output if closed and tail.outcome == "completed" else None,
    )


@given(
    schedules=st.lists(st.booleans(), min_size=1, max_size=4),
    dedup=st.none() | st.just(Deduplication("k")),
    continuation=st.booleans(),
    contexts=st.tuples(maybe_text, maybe_text),
    when=moments,
)
def test_inserted_jobs_are_inserted_job_of_each(
    schedules: list[bool],
    dedup: Deduplication | None,
    continuation: bool,
    contexts: tuple[str | None, str | None],
    when: datetime,
) -> None:
    news = [
        NewJob(
            id=f"j{i}",
            type_name="b",
            chain_type_name="a",
            input={"k": [i]},
            chain_id="c1" if continuation else None,
            chain_index=2 if continuation else 0,
            deduplication=None if continuation else dedup,
            chain_trace_context=contexts[0],
            trace_context=contexts[1],
            priority=i,
            limit_key="key" if i % 2 else None,
        )
        for i in range(len(schedules))
    ]
    at = when + timedelta(seconds=7)
    later = {new.id: at for new, scheduled in zip(news, schedules, strict=True) if scheduled}
    created = inserted_jobs(news, created_at=when, later=later or None)
    assert [type(c) for c in created] == [CreatedJob] * len(news)
    for new, scheduled, (job, deduplicated) in zip(news, schedules, created, strict=True):
        assert deduplicated is False
        _same_as_init(job, StoredJob)
        assert job == inserted_job(
            new,
            input=new.input,
            created_at=when,
            scheduled_at=at if scheduled else when,
            status="scheduled" if scheduled else "ready",
        )


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    row=stored_jobs(), deduplicated=st.booleans(), fresh=st.booleans(), given_input=st.integers()
)
def test_a_started_chain_is_the_chain_of_its_row(
    row: StoredJob, deduplicated: bool, fresh: bool, given_input: int
) -> None:
    """The view of a start's result (a new job's prepared fields, where it applies) is the one the
    generic mapping builds."""
    mapper = Mapper(JobTypeRegistry([]), DefaultCodec())
    if fresh:  # what a new job's row holds
        row = dataclasses.replace(
            row,
            output=None,
            outcome=None,
            completed_at=None,
            completed_by=None,
            succeeded_by_job_id=None,
            attempt=0,
            last_attempt_at=None,
            last_attempt_error=None,
            leased_by=None,
            leased_until=None,
        )
    chain = mapper.started(row, deduplicated, given_input)
    _same_as_init(chain, Chain)
    _same_as_init(chain.root, Job)
    assert chain.tail is chain.root
    expected = mapper.chain(row, row, deduplicated, row.input if deduplicated else given_input)
    assert chain == expected


def test_the_in_memory_rows_hold_the_stored_fields_in_order() -> None:
    """The in-memory store builds a new row from ``inserted_job``'s result field by field."""
    assert tuple(_names(_Row)) == STORED_FIELDS
    assert [n for n in _names(StoredJob) if n not in ("status", "unreadable")] == list(
        STORED_FIELDS
    )


@dataclasses.dataclass
class _Num:
    n: int


class _Start(EntryJobType[_Num, None], name="fast_start"):
    pass


@given(
    given_id=st.booleans(),
    priority=st.none() | st.integers(-5, 5),
    schedule=st.none() | st.builds(Schedule, after=st.timedeltas(timedelta(0), timedelta(1))),
    dedup=st.none() | st.just(Deduplication("k")),
)
def test_a_planned_start_is_the_new_job_init_would_build(
    given_id: bool,
    priority: int | None,
    schedule: Schedule | None,
    dedup: Deduplication | None,
) -> None:
    client: Client[Any] = Client(InMemoryStateAdapter(), job_types=[_Start])
    job = _Start(
        _Num(3),
        id=str(uuid.uuid4()) if given_id else None,
        priority=priority,
        schedule=schedule,
        deduplication=dedup,
    )
    (plan,) = client._core.creation.plan_starts([job])
    _same_as_init(plan.row, NewJob)
    assert plan.row.input == {"n": 3}
    assert plan.row.input_text == '{"n":3}'
    assert plan.row.fresh_id is not given_id
    assert plan.row.priority == (priority or 0)
    assert (plan.row.schedule, plan.row.deduplication) == (schedule, dedup)
