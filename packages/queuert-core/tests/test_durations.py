"""One time convention: every duration queuert takes is a ``timedelta`` or a number of seconds, reads
back as a ``timedelta``, and a negative, NaN or infinite one is a ``UsageError``."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from queuert import (
    Backoff,
    Client,
    Deduplication,
    InMemoryStateAdapter,
    InProcessHub,
    InProcessNotifyAdapter,
    Lease,
    RescheduleJob,
    Schedule,
    UsageError,
    Worker,
)
from queuert.duration import to_timedelta


def _worker(**options: Any) -> Worker[Any]:
    return Worker(Client(InMemoryStateAdapter()), **options)


# Each entry: a parameter's name, how to build something with it, and how to read it back.
DURATIONS: list[tuple[str, Callable[[Any], Any], Callable[[Any], Any]]] = [
    ("Lease.duration", lambda v: Lease(duration=v, renew_every=0.005), lambda o: o.duration),
    ("Lease.renew_every", lambda v: Lease(duration=10**7, renew_every=v), lambda o: o.renew_every),
    ("Backoff.initial", lambda v: Backoff(initial=v), lambda o: o.initial),
    ("Backoff.maximum", lambda v: Backoff(maximum=v), lambda o: o.maximum),
    ("Worker.poll_interval", lambda v: _worker(poll_interval=v), lambda o: o.poll_interval),
    (
        "Worker.shutdown_timeout",
        lambda v: _worker(shutdown_timeout=v),
        lambda o: o.shutdown_timeout,
    ),
    ("Worker.reap_interval", lambda v: _worker(reap_interval=v), lambda o: o.reap_interval),
    ("Schedule.after", lambda v: Schedule(after=v), lambda o: o.after),
    ("Deduplication.window", lambda v: Deduplication("k", window=v), lambda o: o.window),
    ("RescheduleJob.after", lambda v: RescheduleJob(after=v), lambda o: o.schedule.after),
    (
        "InProcessHub.wake_hint_ttl",
        lambda v: InProcessHub(wake_hint_ttl=v),
        lambda o: o.wake_hint_ttl,
    ),
    (
        "InProcessNotifyAdapter.wake_hint_ttl",
        lambda v: InProcessNotifyAdapter(wake_hint_ttl=v),
        lambda o: o.hub.wake_hint_ttl,
    ),
]
IDS = [name for name, _, _ in DURATIONS]


@pytest.mark.parametrize(("name", "build", "read"), DURATIONS, ids=IDS)
@given(seconds=st.integers(min_value=1, max_value=10**6) | st.floats(min_value=0.01, max_value=1e6))
def test_seconds_and_timedelta_mean_the_same_and_read_back_as_timedelta(
    name: str, build: Callable[[Any], Any], read: Callable[[Any], Any], seconds: float
) -> None:
    from_seconds = read(build(seconds))
    from_timedelta = read(build(timedelta(seconds=seconds)))
    assert isinstance(from_seconds, timedelta), name
    assert from_seconds == from_timedelta == timedelta(seconds=seconds)


@pytest.mark.parametrize(("name", "build", "read"), DURATIONS, ids=IDS)
@pytest.mark.parametrize(
    "bad",
    [-1, -0.5, timedelta(seconds=-1), math.nan, math.inf, -math.inf, "5", True, None, 1e300],
    ids=repr,
)
def test_a_duration_that_is_not_one_is_a_usage_error(
    name: str, build: Callable[[Any], Any], read: Callable[[Any], Any], bad: object
) -> None:
    if bad is None and name in ("Worker.reap_interval", "Schedule.after", "Deduplication.window"):
        return  # None is these parameters' "not set"
    if bad is None and name == "RescheduleJob.after":
        return  # RescheduleJob() without a time retries at once
    with pytest.raises(UsageError):
        build(bad)


@pytest.mark.parametrize("name", ["Lease.duration", "Worker.poll_interval", "Deduplication.window"])
def test_a_duration_that_must_be_positive_refuses_zero(name: str) -> None:
    build = {n: b for n, b, _ in DURATIONS}[name]
    with pytest.raises(UsageError):
        build(0)


async def test_wait_for_chain_takes_either_kind_and_refuses_bad_ones() -> None:
    async with InMemoryStateAdapter() as state, Client(state) as client:
        for bad in (-1, math.nan, math.inf, "1"):
            with pytest.raises(UsageError):
                await client.wait_for_chain(state.ids.generate(), timeout=bad)  # type: ignore[call-overload]
        with pytest.raises(UsageError):
            await client.wait_for_chain(state.ids.generate(), timeout=1, poll_interval=0)  # type: ignore[call-overload]


def test_to_timedelta_names_the_parameter() -> None:
    with pytest.raises(UsageError, match="lease duration"):
        to_timedelta(-1, name="lease duration")
    assert to_timedelta(0, name="x") == timedelta(0)
