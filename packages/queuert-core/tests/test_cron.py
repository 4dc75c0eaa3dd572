"""Cron expressions: parsing, and the previous / next match against a minute-by-minute scan,
including across daylight-saving changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from queuert import EntryJobType, Periodic, UsageError
from queuert.cron import Cron

PARIS = ZoneInfo("Europe/Paris")
UTC = timezone.utc


class Tick(EntryJobType[str, None], name="cron_tick"):
    pass


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "* * * *",
        "* * * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "*/0 * * * *",
        "5-1 * * * *",
        "x * * * *",
        "* * * foo *",
        "0 0 30 2 *",
    ],
)
def test_bad_expressions_are_refused(expression: str) -> None:
    with pytest.raises(UsageError):
        Cron(expression)


def test_weekdays_at_half_past_six_in_paris() -> None:
    cron = Cron("30 6 * * mon-fri", zone=PARIS)
    friday_evening = datetime(2026, 12, 4, 18, 0, tzinfo=PARIS)
    assert cron.previous_at_or_before(friday_evening) == datetime(2026, 12, 4, 6, 30, tzinfo=PARIS)
    assert cron.next_after(friday_evening) == datetime(2026, 12, 7, 6, 30, tzinfo=PARIS)
    exactly = datetime(2026, 12, 7, 6, 30, tzinfo=PARIS)
    assert cron.previous_at_or_before(exactly) == exactly
    assert cron.next_after(exactly) == datetime(2026, 12, 8, 6, 30, tzinfo=PARIS)


def test_names_steps_lists_and_macros() -> None:
    assert Cron("@hourly").minutes == (0,) and len(Cron("@hourly").hours) == 24
    assert Cron("*/15 9-17/4 * jan,jul sun").hours == (9, 13, 17)
    assert Cron("*/15 * * * *").minutes == (0, 15, 30, 45)
    assert Cron("0 0 * * 7").weekdays == Cron("0 0 * * 0").weekdays == frozenset({6})
    assert Cron("5/20 * * * *").minutes == (5, 25, 45)


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    cron = Cron("0 12 13 * fri")  # the 13th, and every Friday
    matches = []
    moment = datetime(2026, 11, 1, tzinfo=UTC)
    for _ in range(6):
        found = cron.next_after(moment)
        assert found is not None
        matches.append(found.date().isoformat())
        moment = found
    assert matches == [
        "2026-11-06",
        "2026-11-13",
        "2026-11-20",
        "2026-11-27",
        "2026-12-04",
        "2026-12-11",
    ]


def test_the_hour_skipped_in_spring_runs_nothing() -> None:
    cron = Cron("30 2 * * *", zone=PARIS)  # 02:30 does not exist in Paris on 2026-03-29
    after = cron.next_after(datetime(2026, 3, 28, 3, 0, tzinfo=PARIS))
    assert after == datetime(2026, 3, 30, 2, 30, tzinfo=PARIS)


def test_the_hour_repeated_in_autumn_runs_once() -> None:
    cron = Cron("30 2 * * *", zone=PARIS)  # 02:30 happens twice in Paris on 2026-10-25
    first = cron.next_after(datetime(2026, 10, 25, 0, 0, tzinfo=PARIS))
    assert first is not None and first.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    again = cron.next_after(first)
    assert again is not None and again.date().isoformat() == "2026-10-26"
    second_half_past_two = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 the second time
    assert cron.previous_at_or_before(second_half_past_two) == first


def test_periodic_takes_every_or_cron() -> None:
    every_monday = Periodic(Tick, cron="0 9 * * mon", zone=PARIS, input=lambda t: t.isoformat())
    tick = every_monday.tick_at_or_before(datetime(2026, 12, 9, tzinfo=UTC))
    assert tick == datetime(2026, 12, 7, 9, 0, tzinfo=PARIS)
    assert every_monday.tick_after(datetime(2026, 12, 9, tzinfo=UTC)) == datetime(
        2026, 12, 14, 9, 0, tzinfo=PARIS
    )
    assert every_monday.key(tick) == "periodic:cron_tick:2026-12-07T08:00:00+00:00"
    with pytest.raises(UsageError):
        Periodic(Tick, input=str)
    with pytest.raises(UsageError):
        Periodic(Tick, every=60, cron="* * * * *", input=str)
    with pytest.raises(UsageError):
        Periodic(Tick, every=60, zone=PARIS, input=str)


# -- against a minute-by-minute scan -----------------------------------------------------------


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def _wall_matches(cron: Cron, moment: datetime) -> bool:
    """Brute force: ``moment`` (a whole UTC minute) is a match if its wall time in the zone matches
    the fields and is that wall time's first occurrence."""
    wall = moment.replace(fold=0).astimezone(cron.zone)
    if wall.fold:
        return False
    return (
        wall.minute in cron.minutes and wall.hour in cron.hours and cron._day_matches(wall.date())
    )


def _field(values: st.SearchStrategy[int], low: int, high: int) -> st.SearchStrategy[str]:
    single = values.map(str)
    span = st.tuples(values, values).map(lambda ab: f"{min(ab)}-{max(ab)}")
    step = st.tuples(st.just("*"), st.integers(1, max(1, (high - low) // 2))).map(
        lambda s: f"*/{s[1]}"
    )
    part = st.one_of(single, span, step)
    return st.one_of(st.just("*"), st.lists(part, min_size=1, max_size=3).map(",".join))


EXPRESSIONS = st.tuples(
    _field(st.integers(0, 59), 0, 59),
    _field(st.integers(0, 23), 0, 23),
    st.one_of(st.just("*"), _field(st.integers(1, 28), 1, 28)),
    st.just("*"),
    _field(st.integers(0, 7), 0, 7),
).map(" ".join)

ANY_TIME = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
DST_CHANGES = [  # Paris and New York, spring and autumn
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),
]
NEAR_DST_CHANGES = st.builds(
    lambda change, offset: change + offset,
    st.sampled_from(DST_CHANGES),
    st.timedeltas(min_value=timedelta(hours=-30), max_value=timedelta(hours=30)),
)
MOMENTS = st.one_of(ANY_TIME, NEAR_DST_CHANGES)


@settings(max_examples=150, deadline=None)
@given(EXPRESSIONS, MOMENTS, st.sampled_from([UTC, PARIS, ZoneInfo("America/New_York")]))
def test_previous_and_next_agree_with_a_minute_by_minute_scan(
    expression: str, moment: datetime, zone: ZoneInfo
) -> None:
    cron = Cron(expression, zone=zone)
    window = timedelta(days=4)
    start = moment.replace(second=0, microsecond=0, fold=0)

    expected_next = None
    probe = start + timedelta(minutes=1)
    while probe <= moment + window:
        if _wall_matches(cron, probe):
            expected_next = probe
            break
        probe += timedelta(minutes=1)
    # (compared in UTC: Python never finds a wall time of a repeated hour equal to a time of
    # another zone)
    found_next = _utc(cron.next_after(moment))
    if expected_next is not None:
        assert found_next == expected_next
    else:
        assert found_next is None or found_next > moment + window

    expected_previous = None
    probe = start
    while probe >= moment - window:
        if _wall_matches(cron, probe):
            expected_previous = probe
            break
        probe -= timedelta(minutes=1)
    found_previous = _utc(cron.previous_at_or_before(moment))
    if expected_previous is not None:
        assert found_previous == expected_previous
    else:
        assert found_previous is None or found_previous < moment - window
