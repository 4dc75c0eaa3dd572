"""The job read from a row of :func:`~queuert_postgres._sql.cols` columns: each column lands in its
field, the input and output parse as stored JSON (an output given by the caller is used as is),
timestamps come back in ``timezone.utc`` (also when selected as microseconds, as the claims select
them, exactly the times the server holds), and a time Python cannot read is reported as such."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pg_helpers import DSN
from queuert.json import UndecodableValue
from queuert.state import UNREADABLE_TIME
from queuert_postgres._rows import (
    _FIELDS,
    _TIMESTAMPS,
    job_from_claim_row,
    job_from_row,
    time_from_micros,
)
from queuert_postgres._sql import micros

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_ZONES = st.sampled_from(
    [timezone.utc, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5))]
)
_TIMES = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=_ZONES
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)


@st.composite
def rows(draw: st.DrawFn) -> tuple[int, list[Any], dict[str, Any]]:
    """A row with ``o`` leading columns of something else, and the values each field holds."""
    values: dict[str, Any] = {}
    for name in _FIELDS:
        if name in ("input", "output"):
            values[name] = draw(st.none() | _JSON.map(json.dumps) | st.just("{not json"))
        elif name in _TIMESTAMPS:
            values[name] = draw(st.none() | _TIMES)
        elif name == "unreadable":
            values[name] = draw(st.none() | st.just("completed_at infinity"))
        else:
            values[name] = draw(st.none() | st.integers() | st.text(max_size=5))
    o = draw(st.integers(0, 3))
    return o, ["lead"] * o + [values[name] for name in _FIELDS] + ["tail"], values


def in_micros(row: list[Any]) -> list[Any]:
    """``row`` with its times as microseconds since the Unix epoch."""
    return [
        (v - _EPOCH) // timedelta(microseconds=1) if isinstance(v, datetime) else v for v in row
    ]


@given(rows(), st.booleans(), st.booleans())
def test_each_column_lands_in_its_field(
    drawn: tuple[int, list[Any], dict[str, Any]], output_given: bool, claimed: bool
) -> None:
    o, row, values = drawn
    given_output = object()
    read_row = job_from_claim_row if claimed else job_from_row
    if claimed:
        row = in_micros(row)
    job = read_row(row, o, given_output) if output_given else read_row(row, o)
    read = vars(job)
    assert list(read) == list(_FIELDS)
    for name in _FIELDS:
        value = values[name]
        if name == "output" and output_given:
            assert read[name] is given_output
        elif name in ("input", "output"):
            if value is None:
                assert read[name] is None
            elif value == "{not json":
                assert isinstance(read[name], UndecodableValue)
            else:
                assert read[name] == json.loads(value)
        elif name in _TIMESTAMPS:
            if value is None:
                expected = (
                    UNREADABLE_TIME
                    if name in ("created_at", "scheduled_at") and values["unreadable"]
                    else None
                )
                assert read[name] == expected
            else:
                assert read[name] == value and read[name].tzinfo is timezone.utc
        elif name == "unreadable":
            if value is None:
                assert read[name] is None
            else:
                assert read[name][0] == "completed_at"
        else:
            assert read[name] is value


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata", "Europe/Amsterdam"])
async def test_times_in_microseconds_are_the_servers_times(zone: str) -> None:
    """:func:`~queuert_postgres._sql.micros` and :func:`time_from_micros` give the time the driver
    reads, to the microsecond, before and after the epoch, at the bounds of the readable range and
    in any session time zone; a time Python cannot read selects as NULL."""
    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute(f"SET timezone = '{zone}'")
        rows = await connection.fetch(
            f"SELECT t, {micros('t')} AS m FROM (SELECT t FROM generate_series("
            "'1900-01-01'::timestamptz, '2100-01-01'::timestamptz, "
            "interval '12345678 seconds 123457 microseconds') t UNION ALL SELECT unnest("
            "ARRAY['0001-01-02 00:00:00.000001+00', '1969-12-31 23:59:59.999999+00', "
            "'1970-01-01 00:00:00+00', '9999-12-29 23:59:59.999999+00']::timestamptz[])) s"
        )
        assert len(rows) > 500
        for row in rows:
            assert time_from_micros(row["m"]) == row["t"]
            assert time_from_micros(row["m"]).tzinfo is timezone.utc
        unreadable = await connection.fetch(
            f"SELECT {micros('t')} AS m FROM (SELECT unnest(ARRAY['infinity', '-infinity', "
            "'0001-01-01 00:00:00+00']::timestamptz[]) t) s"
        )
        assert [row["m"] for row in unreadable] == [None, None, None]
    finally:
        await connection.close()
