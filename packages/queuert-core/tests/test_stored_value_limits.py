"""The limits on what a job may carry, checked before anything is written: schedules a backend can
store, the client's payload size option, and error texts every backend can store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from queuert import (
    Client,
    EntryJobType,
    JobTypeValidationError,
    NotJsonError,
    PayloadTooLargeError,
    Schedule,
    UsageError,
)
from queuert.codec import DefaultCodec
from queuert.in_memory import InMemoryStateAdapter
from queuert.json import JsonValue, dumps, loads
from queuert.payload import Payloads, check_payload, storable_text
from queuert.schedule import LATEST_SCHEDULE, LONGEST_DELAY
from queuert.worker import serialize_error


def test_a_schedule_beyond_the_year_9000_is_refused() -> None:
    with pytest.raises(UsageError, match="before 9000-01-01"):
        Schedule(at=datetime(9999, 12, 31, tzinfo=timezone.utc))
    with pytest.raises(UsageError, match="before 9000-01-01"):
        Schedule(at=LATEST_SCHEDULE)
    assert Schedule(at=LATEST_SCHEDULE - timedelta(seconds=1)).at is not None


@pytest.mark.parametrize("after", [LONGEST_DELAY + timedelta(days=1), 1e11, timedelta.max])
def test_a_delay_over_a_thousand_years_is_refused(after: timedelta | float) -> None:
    with pytest.raises(UsageError, match="schedule `after` is at most"):
        Schedule(after=after)


@pytest.mark.parametrize("after", [float("nan"), float("inf"), 1e300])
def test_a_delay_that_is_no_duration_is_refused(after: float) -> None:
    with pytest.raises(UsageError):
        Schedule(after=after)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "1MB", True])
def test_max_payload_bytes_must_be_a_positive_int_or_none(bad: object) -> None:
    with pytest.raises(UsageError, match="max_payload_bytes"):
        Client(InMemoryStateAdapter(), max_payload_bytes=bad)  # type: ignore[arg-type]


def test_no_limit_accepts_a_large_value() -> None:
    payloads = Payloads(DefaultCodec(), max_bytes=None)
    assert payloads.encode(str, "x" * 5_000_000, what="input", type_name="t") == "x" * 5_000_000


def test_the_limit_error_names_the_value() -> None:
    with pytest.raises(PayloadTooLargeError) as raised:
        check_payload("x" * 20, max_bytes=10, what="output", type_name="send")
    error = raised.value
    assert (error.what, error.type_name, error.size, error.limit) == ("output", "send", 22, 10)
    assert "the output of 'send' is 22 bytes" in str(error)


def test_a_backslash_u0000_written_as_text_is_not_taken_for_nul() -> None:
    check_payload({"path": "C:\\u0000"}, max_bytes=None)  # a backslash, then 'u0000'


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("plain", "plain"),
        ("nul \x00 here", "nul \\x00 here"),
        ("lone \udc80", "lone \\udc80"),
        ("accents é and 😀", "accents é and 😀"),
    ],
)
def test_error_text_is_stored_with_nul_and_surrogates_escaped(text: str, stored: str) -> None:
    assert storable_text(text) == stored


def test_an_exception_whose_str_raises_is_still_recorded() -> None:
    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    text = serialize_error(Hostile())
    assert text.startswith("Hostile: <str() of the exception raised>")


class _Carry(EntryJobType[JsonValue, None], name="limits_carry"):
    pass


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(value=_json_values)
def test_a_planned_start_carries_the_json_text_its_input_was_checked_as(value: JsonValue) -> None:
    """The input is encoded once: the text the checks measured rides to the state adapter."""
    client = Client(InMemoryStateAdapter(), job_types=[_Carry])
    try:
        (plan,) = client._core.creation.plan_starts([_Carry(value)])
    except NotJsonError:
        return  # refused before anything is planned (NUL, lone surrogates): nothing to carry
    assert plan.row.input_text == dumps(plan.row.input)
    assert loads(plan.row.input_text) == plan.row.input


@dataclass
class _Pair:
    left: Any
    right: Any


@dataclass
class _PairPlus(_Pair):
    pass


class _CarryPair(EntryJobType[_Pair, None], name="limits_carry_pair"):
    pass


def _planned(client: Client[Any], jobs: list[Any]) -> list[tuple[Any, str | None]] | str:
    """Each planned row's input and text, or the error planning ``jobs`` raised."""
    try:
        plans = client._core.creation.plan_starts(jobs)
    except Exception as exc:  # the error is what is compared
        return f"{type(exc).__name__}: {exc}"
    return [(plan.row.input, plan.row.input_text) for plan in plans]


@settings(max_examples=80, deadline=None)
@given(values=st.lists(_json_values, min_size=2, max_size=5), limit=st.sampled_from([None, 40]))
def test_a_batch_of_starts_is_encoded_as_its_starts_one_by_one(
    values: list[JsonValue], limit: int | None
) -> None:
    """A batch of one job type has its inputs encoded together: the same inputs and texts as
    one by one, or the error of its first job that has one."""
    client = Client(InMemoryStateAdapter(), job_types=[_Carry, _CarryPair], max_payload_bytes=limit)
    for make in (_Carry, lambda value: _CarryPair(_Pair(value, len(values)))):
        jobs = [make(value) for value in values]
        alone = [_planned(client, [job]) for job in jobs]
        errors = [one for one in alone if isinstance(one, str)]
        expected = errors[0] if errors else [row for one in alone for row in one]
        assert _planned(client, jobs) == expected


def test_a_batch_within_the_limit_job_by_job_is_accepted() -> None:
    """The limit is on each input: a batch whose inputs together exceed it is planned."""
    client = Client(InMemoryStateAdapter(), job_types=[_Carry], max_payload_bytes=12)
    plans = client._core.creation.plan_starts([_Carry("x" * 10) for _ in range(5)])
    assert [plan.row.input_text for plan in plans] == ['"xxxxxxxxxx"'] * 5
    with pytest.raises(PayloadTooLargeError):
        client._core.creation.plan_starts([_Carry("x"), _Carry("x" * 11)])


def test_a_batch_with_an_input_of_a_subclass_or_another_type_is_checked_job_by_job() -> None:
    client = Client(InMemoryStateAdapter(), job_types=[_CarryPair])
    plans = client._core.creation.plan_starts(
        [_CarryPair(_Pair(1, "a")), _CarryPair(_PairPlus(2.5, [True]))]
    )
    assert [plan.row.input_text for plan in plans] == [
        '{"left":1,"right":"a"}',
        '{"left":2.5,"right":[true]}',
    ]
    with pytest.raises(JobTypeValidationError, match="expected _Pair"):
        client._core.creation.plan_starts(
            [_CarryPair(_Pair(1, "a")), _CarryPair({"left": 1})]  # type: ignore[arg-type]
        )
