"""The job read from a row of :func:`~queuert_postgres._sql.cols` columns: each column lands in its
field, the input and output parse as stored JSON (an output given by the caller is used as is),
timestamps come back in ``timezone.utc``, and a time Python cannot read is reported as such."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from queuert.json import UndecodableValue
from queuert.state import UNREADABLE_TIME
from queuert_postgres._rows import _FIELDS, _TIMESTAMPS, job_from_row

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


@given(rows(), st.booleans())
def test_each_column_lands_in_its_field(
    drawn: tuple[int, list[Any], dict[str, Any]], output_given: bool
) -> None:
    o, row, values = drawn
    given_output = object()
    job = job_from_row(row, o, given_output) if output_given else job_from_row(row, o)
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
