"""The checks the core makes before it calls a state adapter, and the helpers adapters share.

Filters, page arguments and completions refuse what no adapter should see; cursors belong to one
list; pages and ``scheduled_at`` are computed in one place."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st
from queuert.cursor import (
    decode_blocked_jobs_cursor,
    decode_chain_jobs_cursor,
    decode_chains_cursor,
    decode_jobs_cursor,
    encode_blocked_jobs_cursor,
    encode_chain_jobs_cursor,
    encode_chains_cursor,
    encode_jobs_cursor,
)
from queuert.errors import InvalidJobIdError, UsageError
from queuert.ids import UUID_IDS, uuid7
from queuert.json import dumps
from queuert.paging import (
    MAX_LIMIT,
    ListName,
    blocked_jobs_page,
    chain_jobs_page,
    chains_page,
    check_page,
    fetch_size,
    jobs_page,
)
from queuert.schedule import Schedule, scheduled_at
from queuert.state import (
    READ_OUTPUT,
    ChainFilter,
    Completion,
    JobFilter,
    JobStatus,
    NewJob,
    StoredChain,
    in_creation_order,
    inserted_job,
)

UTC = timezone.utc
NOW = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


# -- filters --------------------------------------------------------------------------------------


def test_filters_store_tuples_and_utc() -> None:
    east = timezone(timedelta(hours=3))
    f = JobFilter(
        type_names=["a"],
        statuses=list(get_args(JobStatus)),
        job_ids=[uuid7()],
        created_from=datetime(2030, 1, 1, 3, tzinfo=east),
    )
    assert f.type_names == ("a",) and isinstance(f.statuses, tuple) and isinstance(f.job_ids, tuple)
    assert f.created_from == datetime(2030, 1, 1, tzinfo=UTC)
    assert f.created_from.tzinfo is UTC
    c = ChainFilter(chain_ids=[], status="closed", created_to=NOW)
    assert c.chain_ids == () and c.created_to == NOW


@pytest.mark.parametrize(
    "kwargs",
    [
        {"statuses": ["bogus"]},
        {"statuses": ["ready", "Ready"]},
        {"statuses": "ready"},
        {"type_names": "a"},
        {"type_names": [1]},
        {"type_names": 5},
        {"chain_type_names": [None]},
        {"job_ids": [7]},
        {"chain_ids": "abc"},
        {"created_from": datetime(2030, 1, 1)},
        {"created_to": "2030-01-01T00:00:00+00:00"},
    ],
)
def test_a_job_filter_refuses_unknown_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        JobFilter(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": "bogus"},
        {"status": "ready"},
        {"type_names": "a"},
        {"chain_ids": [uuid7(), 3]},
        {"job_ids": b"x"},
        {"root_only": 1},
        {"created_from": datetime(2030, 1, 1)},
    ],
)
def test_a_chain_filter_refuses_unknown_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        ChainFilter(**kwargs)


def test_filters_check_their_ids_against_a_policy() -> None:
    good = uuid7()
    ChainFilter(chain_ids=[good], job_ids=[good]).check_ids(UUID_IDS)
    JobFilter(chain_ids=[good], job_ids=[]).check_ids(UUID_IDS)
    with pytest.raises(InvalidJobIdError) as info:
        ChainFilter(chain_ids=[good], job_ids=[good, "x"]).check_ids(UUID_IDS)
    assert info.value.argument == "job_ids[1]"
    with pytest.raises(InvalidJobIdError) as info:
        JobFilter(chain_ids=["x"]).check_ids(UUID_IDS)
    assert info.value.argument == "chain_ids[0]"
    with pytest.raises(InvalidJobIdError) as info:
        JobFilter(job_ids=[good, 7])  # not a string: no policy accepts it
    assert info.value.argument == "job_ids[1]"


# -- pages and cursors ----------------------------------------------------------------------------

CURSORS = {
    "chains": encode_chains_cursor(NOW, uuid7()),
    "jobs": encode_jobs_cursor(NOW, uuid7()),
    "blocked_jobs": encode_blocked_jobs_cursor(NOW, uuid7()),
    "chain_jobs": encode_chain_jobs_cursor(4),
}


@pytest.mark.parametrize("list_name", list(CURSORS))
def test_check_page_accepts_a_cursor_of_the_same_list_only(list_name: ListName) -> None:
    for order in ("asc", "desc"):
        for limit in (1, 50, MAX_LIMIT):
            check_page(list_name, order=order, limit=limit, cursor=None, ids=UUID_IDS)
            check_page(list_name, order=order, limit=limit, cursor=CURSORS[list_name], ids=UUID_IDS)
    for other, cursor in CURSORS.items():
        if other != list_name:
            with pytest.raises(UsageError):
                check_page(list_name, order="asc", limit=1, cursor=cursor, ids=UUID_IDS)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"order": "up"},
        {"order": "DESC"},
        {"order": None},
        {"limit": 0},
        {"limit": -1},
        {"limit": MAX_LIMIT + 1},
        {"limit": True},
        {"limit": 5.0},
        {"limit": "5"},
        {"cursor": ""},
        {"cursor": "not a cursor!"},
        {"cursor": "eyJrIjoieiJ9"},  # valid base64 JSON of an unknown kind
        {"cursor": 17},
        {"cursor": encode_jobs_cursor(NOW, "not-an-id")},
    ],
)
def test_check_page_refuses_bad_arguments(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"order": "desc", "limit": 10, "cursor": None, **kwargs}
    with pytest.raises(UsageError):
        check_page("jobs", ids=UUID_IDS, **args)


def test_check_page_refuses_a_negative_chain_index() -> None:
    with pytest.raises(UsageError):
        check_page(
            "chain_jobs", order="asc", limit=1, cursor=encode_chain_jobs_cursor(-1), ids=UUID_IDS
        )


@given(st.datetimes(timezones=st.just(UTC)), st.uuids().map(str))
def test_time_cursors_of_each_list_round_trip(when: datetime, row_id: str) -> None:
    assert decode_chains_cursor(encode_chains_cursor(when, row_id)) == (when, row_id)
    assert decode_jobs_cursor(encode_jobs_cursor(when, row_id)) == (when, row_id)
    assert decode_blocked_jobs_cursor(encode_blocked_jobs_cursor(when, row_id)) == (when, row_id)


@given(st.integers(min_value=0, max_value=10**9))
def test_chain_jobs_cursors_round_trip(index: int) -> None:
    assert decode_chain_jobs_cursor(encode_chain_jobs_cursor(index)) == index


def _job(i: int) -> Any:
    new = NewJob(id=uuid7(), type_name="t", chain_type_name="t", input=i, chain_index=i)
    return inserted_job(
        new, input=i, created_at=NOW + timedelta(seconds=i), scheduled_at=NOW, status="ready"
    )


def test_pages_set_a_cursor_only_when_another_row_exists() -> None:
    jobs = [_job(i) for i in range(4)]
    assert fetch_size(3) == 4
    full = jobs_page(jobs, 3)
    assert full.items == jobs[:3] and full.next_cursor is not None
    assert decode_jobs_cursor(full.next_cursor) == (jobs[2].created_at, jobs[2].id)
    last = jobs_page(jobs[:3], 3)
    assert last.items == jobs[:3] and last.next_cursor is None
    blocked = blocked_jobs_page(jobs, 2)
    assert blocked.next_cursor is not None
    assert decode_blocked_jobs_cursor(blocked.next_cursor) == (jobs[1].created_at, jobs[1].id)
    chain = chain_jobs_page(jobs, 2)
    assert chain.next_cursor is not None and decode_chain_jobs_cursor(chain.next_cursor) == 1
    chains = [StoredChain(root=j, tail=j) for j in jobs]
    page = chains_page(chains, 1)
    assert page.items == chains[:1] and page.next_cursor is not None
    assert decode_chains_cursor(page.next_cursor) == (jobs[0].created_at, jobs[0].id)
    assert chains_page([], 5).next_cursor is None


def test_deleted_chains_are_ordered_by_creation() -> None:
    jobs = [_job(i) for i in range(3)]
    same_time = [_job(0), _job(0)]
    chains = [StoredChain(root=j, tail=j) for j in [*jobs, *same_time]]
    ordered = in_creation_order(list(reversed(chains)))
    assert [c.id for c in ordered] == [
        c.id for c in sorted(chains, key=lambda c: (c.root.created_at, c.root.id))
    ]
    assert ordered[-1].id == jobs[2].id


# -- completions ----------------------------------------------------------------------------------


def test_completions_that_are_consistent() -> None:
    assert Completion("j", output={"a": 1}).closes_with_output
    assert Completion("j").output is None and Completion("j").closes_with_output
    continued = Completion("j", succeeded_by_job_id="k")
    assert not continued.closes_with_output and continued.output is None
    failed = Completion("j", "failed", error="boom")
    assert not failed.closes_with_output and failed.error == "boom"
    assert Completion("j", "cancelled").outcome == "cancelled"
    with pytest.raises(AttributeError):
        failed.error = "x"  # type: ignore[misc]


def test_a_completion_knows_its_written_output_only_when_the_core_encoded_it() -> None:
    value = {"ok": [1, 2]}
    assert Completion("j", output=value, output_text=dumps(value)).written_output is value
    assert Completion("j", output=value).written_output is READ_OUTPUT  # the store encoded it
    assert Completion("j", succeeded_by_job_id="s").written_output is READ_OUTPUT
    assert Completion("j", outcome="failed", error="e").written_output is READ_OUTPUT


def test_a_completion_closes_from_its_claim_only_with_its_written_output_known() -> None:
    claimed = _job(0)
    value = {"ok": True}
    text = dumps(value)
    assert Completion("j", output=value, output_text=text, claimed=claimed).closes_from_claim
    assert not Completion("j", output=value, output_text=text).closes_from_claim  # no claim
    # the store encodes the output itself: the row's output is to be read back
    assert not Completion("j", output=value, claimed=claimed).closes_from_claim
    assert not Completion("j", succeeded_by_job_id="s", claimed=claimed).closes_from_claim


@pytest.mark.parametrize(
    "args",
    [
        {"outcome": "done"},
        {"outcome": "continued"},
        {"outcome": "failed", "succeeded_by_job_id": "k"},
        {"outcome": "cancelled", "succeeded_by_job_id": "k"},
        {"outcome": "failed", "output": 1},
        {"outcome": "cancelled", "output": False},
        {"succeeded_by_job_id": "k", "output": 1},
        {"error": "a completed job has no error"},
    ],
)
def test_completions_that_contradict_themselves_are_refused(args: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        Completion("j", **args)


# -- scheduled_at ---------------------------------------------------------------------------------


def test_scheduled_at_is_never_earlier_than_now() -> None:
    assert scheduled_at(None, NOW) == NOW
    assert scheduled_at(Schedule(), NOW) == NOW
    assert scheduled_at(Schedule(after=timedelta(minutes=5)), NOW) == NOW + timedelta(minutes=5)
    assert scheduled_at(Schedule(after=timedelta(0)), NOW) == NOW
    later = NOW + timedelta(days=2)
    assert scheduled_at(Schedule(at=later), NOW) == later
    assert scheduled_at(Schedule(at=NOW - timedelta(days=2)), NOW) == NOW
