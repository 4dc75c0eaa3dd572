"""Periodic's arguments and tick arithmetic (the behaviour across workers is in the conformance
suite's TestPeriodic)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from queuert import Client, EntryJobType, InMemoryStateAdapter, Periodic, UsageError, Worker


@dataclass
class Day:
    at: str


class Digest(EntryJobType[Day, None], name="periodic_digest"):
    pass


def _day(tick: datetime) -> Day:
    return Day(tick.isoformat())


def test_ticks_fall_on_the_anchor_plus_whole_intervals() -> None:
    paris = ZoneInfo("Europe/Paris")
    daily = Periodic(
        Digest, every=timedelta(days=1), input=_day, anchor=datetime(2026, 1, 1, 6, tzinfo=paris)
    )
    moment = datetime(2026, 3, 10, 5, 59, tzinfo=paris)
    assert daily.tick_at_or_before(moment) == datetime(2026, 3, 9, 6, tzinfo=paris)
    assert daily.tick_at_or_before(datetime(2026, 3, 10, 6, tzinfo=paris)) == datetime(
        2026, 3, 10, 6, tzinfo=paris
    )
    key = daily.key(datetime(2026, 3, 10, 6, tzinfo=paris))
    assert key == "periodic:periodic_digest:2026-03-10T05:00:00+00:00"
    # a fixed interval: after the switch to summer time the tick stays at 05:00 UTC (07:00 local)
    summer = daily.tick_at_or_before(datetime(2026, 4, 2, 6, 30, tzinfo=paris))
    assert summer == datetime(2026, 4, 1, 7, tzinfo=paris)
    assert summer <= datetime(2026, 4, 2, 6, 30, tzinfo=paris)


@pytest.mark.parametrize(
    "options",
    [
        {"every": 0.05},
        {"every": 0},
        {"every": 1, "anchor": datetime(2026, 1, 1)},  # naive
        {"every": 1, "name": ""},
        {"every": 1, "name": "x" * 300},
    ],
)
def test_bad_arguments_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        Periodic(Digest, input=_day, **options)  # type: ignore[arg-type]


def test_names_must_be_unique_within_a_worker() -> None:
    client = Client(InMemoryStateAdapter())
    hourly = Periodic(Digest, every=3600, input=_day)
    with pytest.raises(UsageError, match="unique"):
        Worker(client, periodic=[hourly, Periodic(Digest, every=60, input=_day)])
    Worker(client, periodic=[hourly, Periodic(Digest, every=60, input=_day, name="minutely")])
    assert Periodic(Digest, every=60, input=_day).anchor == datetime(
        1970, 1, 1, tzinfo=timezone.utc
    )
