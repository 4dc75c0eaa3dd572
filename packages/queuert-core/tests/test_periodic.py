"""Periodic's arguments, tick arithmetic and shutdown (the behaviour across workers is in the
conformance suite's TestPeriodic)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from queuert import (
    Attempt,
    Client,
    EntryJobType,
    InMemoryStateAdapter,
    Periodic,
    UsageError,
    Worker,
)
from queuert.state import CreatedJob, NewJob


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


async def _digest(attempt: Attempt[Digest]) -> None:
    return None


class _LosesOneCancellation(InMemoryStateAdapter):
    """A store whose first chain start waits until cancelled and then completes anyway, as a
    driver call can when the cancellation arrives together with its result (asyncio.wait_for
    before Python 3.12 returns the result then)."""

    def __init__(self) -> None:
        super().__init__()
        self.starting = asyncio.Event()
        self.lost = False

    async def create_jobs(self, jobs: Sequence[NewJob], *, tx: Any = None) -> list[CreatedJob]:
        if not self.lost:
            self.starting.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.lost = True
        return await super().create_jobs(jobs, tx=tx)


async def test_closing_ends_a_periodic_whose_cancellation_was_lost() -> None:
    state = _LosesOneCancellation()
    client: Client[Any] = Client(state)
    # hourly: after starting its tick the periodic sleeps until the next one, an hour away
    worker: Worker[Any] = Worker(
        client, handlers={Digest: _digest}, periodic=[Periodic(Digest, every=3600, input=_day)]
    )
    await worker.start()
    await asyncio.wait_for(state.starting.wait(), 10)
    await asyncio.wait_for(worker.close(), 10)
    assert state.lost, "the first cancellation was let go by the store"
    chains = (await client.list_chains(type_names=[Digest])).items
    assert len(chains) == 1, "the tick's chain start completed"
    await client.close()
