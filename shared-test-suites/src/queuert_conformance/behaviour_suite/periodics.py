"""The periodic schedule, handler and tick reading that the periodic suites share."""

from __future__ import annotations

from datetime import datetime, timedelta

from queuert import Attempt, Periodic

from queuert_conformance.behaviour_suite.jobs import Echo, Num
from queuert_conformance.behaviour_suite.support import Env

__all__ = ["echo", "echo_every", "started_ticks"]


async def echo(attempt: Attempt[Echo]) -> Num:
    return Num(attempt.input.value)


def echo_every(seconds: float) -> Periodic[Num]:
    return Periodic(
        Echo,
        every=timedelta(seconds=seconds),
        input=lambda tick: Num(int(tick.timestamp() * 1000) % 1_000_000),
        name="conformance-echo",
    )


async def started_ticks(env: Env) -> list[datetime]:
    """The tick of every periodic chain, from its deduplication key."""
    chains = (await env.client.list_chains(type_names=[Echo], limit=1000)).items
    prefix = "periodic:conformance-echo:"
    ticks = []
    for chain in chains:
        key = chain.root.deduplication_key
        assert key is not None and key.startswith(prefix), key
        ticks.append(datetime.fromisoformat(key.removeprefix(prefix)))
    return sorted(ticks)
