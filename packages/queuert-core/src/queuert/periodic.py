"""Periodic chains: start a chain every interval or on a cron schedule, exactly once per tick across any
number of workers.

``Periodic(SendDigest, every=timedelta(hours=1), input=lambda tick: Digest(tick))`` describes the
chains; give it to every worker that should start them (``Worker(client, periodic=[...])``). Ticks
fall at ``anchor + k * every`` (``anchor`` defaults to the Unix epoch in UTC; give a time-zone-aware
``anchor`` to tick at local times, e.g. every day at 06:00 in Europe/Paris: note that a fixed
interval does not follow daylight-saving shifts). ``cron="30 6 * * mon-fri", zone=ZoneInfo(...)``
ticks at the times a cron expression matches on that zone's wall clock instead (see
:class:`~queuert.cron.Cron`, which follows daylight-saving shifts). Each worker wakes at every tick and starts the
tick's chain with a deduplication key made of the periodic's name and the tick's time (scope
``"any"``), so the chain is created once however many workers start it, and again by none after a
restart.

**Missed ticks:** a worker that starts (or wakes late) starts the chain of the most recent tick only,
if no one did; earlier ticks that passed while no worker ran are skipped, not replayed. The chain of a
tick may therefore start up to one interval late, never twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from queuert._tasks import cancel_until_done
from queuert.cron import Cron
from queuert.duration import Duration, to_timedelta
from queuert.errors import UsageError
from queuert.job_types import EntryJobType
from queuert.schedule import MAX_DEDUPLICATION_KEY_LENGTH, Deduplication

if TYPE_CHECKING:
    from queuert.client import Client

__all__ = ["Periodic", "PeriodicStarter"]

logger = logging.getLogger("queuert.periodic")

In = TypeVar("In")

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_KEY_ROOM = (
    MAX_DEDUPLICATION_KEY_LENGTH - len("periodic::") - len("0000-00-00T00:00:00.000000+00:00")
)


@dataclass(frozen=True, init=False)
class Periodic(Generic[In]):
    """A chain of ``job_type`` started every ``every`` (a ``timedelta`` or seconds, at least 0.1 s)
    or at every time the cron expression ``cron`` matches in ``zone`` (default UTC), with the input
    ``input(tick)`` (the tick's time, aware). ``name`` (default: the job type's name) tells
    periodics of one type apart; it is part of every tick's deduplication key."""

    job_type: type[EntryJobType[In, Any]]
    every: timedelta | None
    cron: Cron | None
    input: Callable[[datetime], In]
    name: str
    anchor: datetime

    def __init__(
        self,
        job_type: type[EntryJobType[In, Any]],
        *,
        input: Callable[[datetime], In],
        every: Duration | None = None,
        cron: str | Cron | None = None,
        zone: tzinfo | None = None,
        name: str | None = None,
        anchor: datetime = EPOCH,
    ) -> None:
        if (every is None) == (cron is None):
            raise UsageError("a Periodic takes `every` or `cron`, exactly one of them")
        interval: timedelta | None = None
        schedule: Cron | None = None
        if every is not None:
            if zone is not None:
                raise UsageError("`zone` goes with `cron`; an interval follows its `anchor`")
            interval = to_timedelta(every, name="Periodic every", positive=True)
            if interval < timedelta(milliseconds=100):
                raise UsageError(f"Periodic every must be at least 0.1 s, not {interval}")
        elif isinstance(cron, Cron):
            if zone is not None:
                raise UsageError("a Cron carries its own zone: pass `zone` to Cron")
            schedule = cron
        elif cron is not None:
            schedule = Cron(cron, zone=timezone.utc if zone is None else zone)
        if not isinstance(anchor, datetime) or anchor.tzinfo is None:
            raise UsageError("Periodic anchor must be a timezone-aware datetime")
        label = job_type.type_name if name is None else name
        if not isinstance(label, str) or not label or len(label) > _KEY_ROOM:
            raise UsageError(f"a Periodic name has 1 to {_KEY_ROOM} characters, not {label!r}")
        if not callable(input):
            raise UsageError("Periodic input must be a function of the tick's time")
        object.__setattr__(self, "job_type", job_type)
        object.__setattr__(self, "every", interval)
        object.__setattr__(self, "cron", schedule)
        object.__setattr__(self, "input", input)
        object.__setattr__(self, "name", label)
        object.__setattr__(self, "anchor", anchor)

    def tick_at_or_before(self, moment: datetime) -> datetime | None:
        """The latest tick not after ``moment``: for an interval in the anchor's time zone (the
        arithmetic is done in UTC: ticks are a fixed interval apart, whatever the local clock does),
        for a cron expression in its zone (``None`` before its first match in years)."""
        if self.cron is not None:
            return self.cron.previous_at_or_before(moment)
        assert self.every is not None
        anchor = self.anchor.astimezone(timezone.utc)
        ticks = (moment - anchor) // self.every
        return (anchor + ticks * self.every).astimezone(self.anchor.tzinfo)

    def tick_after(self, moment: datetime) -> datetime | None:
        """The first tick after ``moment``."""
        if self.cron is not None:
            return self.cron.next_after(moment)
        assert self.every is not None
        anchor = self.anchor.astimezone(timezone.utc)
        ticks = (moment - anchor) // self.every + 1
        return (anchor + ticks * self.every).astimezone(self.anchor.tzinfo)

    def key(self, tick: datetime) -> str:
        """The deduplication key of ``tick``'s chain."""
        return f"periodic:{self.name}:{tick.astimezone(timezone.utc).isoformat()}"


class PeriodicStarter:
    """Starts the chains of ``periodics`` at their ticks until closed (a worker runs one)."""

    def __init__(self, client: Client[Any], periodics: Sequence[Periodic[Any]]) -> None:
        names = [p.name for p in periodics]
        if len(set(names)) != len(names):
            raise UsageError(f"Periodic names must be unique, got {names}")
        self._client = client
        self._periodics = list(periodics)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        for periodic in self._periodics:
            client.registry.add([periodic.job_type])

    def start(self) -> None:
        self._closing = False
        self._tasks = [
            asyncio.create_task(self._run(p), name=f"queuert-periodic-{p.name}")
            for p in self._periodics
        ]

    async def close(self) -> None:
        self._closing = True
        tasks, self._tasks = self._tasks, []
        # a task whose cancellation the store's driver lost would sleep until its next tick
        await cancel_until_done(tasks)

    async def _run(self, periodic: Periodic[Any]) -> None:
        started: datetime | None = None
        retry = 1.0 if periodic.every is None else min(1.0, periodic.every.total_seconds())
        while not self._closing:
            now = datetime.now(timezone.utc)
            tick = periodic.tick_at_or_before(now)
            if tick is not None and tick != started:
                try:
                    await self.start_tick(periodic, tick)
                    started = tick
                except Exception as exc:  # the store may be down: try again shortly
                    logger.warning(
                        "starting a periodic chain failed",
                        extra={"queuert_periodic": periodic.name, "queuert_error": repr(exc)},
                    )
                    await asyncio.sleep(retry)
                    continue
            upcoming = periodic.tick_after(now)
            if upcoming is None:  # a cron expression with no match for years
                await asyncio.sleep(3600)
                continue
            wait = (upcoming - datetime.now(timezone.utc)).total_seconds()
            # sleep in steps of at most an hour: a clock that jumps is noticed within one
            await asyncio.sleep(min(max(wait, 0.0), 3600.0))

    async def start_tick(self, periodic: Periodic[Any], tick: datetime) -> bool:
        """Start ``tick``'s chain unless it exists; True if this call created it."""
        job = periodic.job_type(
            periodic.input(tick),
            deduplication=Deduplication(periodic.key(tick), scope="any"),
        )
        client = self._client
        async with client.transaction() as tx:
            chain = await client.start_chain(job, tx=tx)
        return not chain.deduplicated
