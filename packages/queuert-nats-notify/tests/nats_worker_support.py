"""Worker-level scenarios on a real NATS server: job types, a recorder of handler runs, a producer, checks.

The worker polls every ``POLL_INTERVAL`` seconds (a realistic setting), so a wake-up that arrives
"well under the poll interval" (``FAST``) can only have come from a notification.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from queuert import Attempt, Client, EntryJobType, JobType

POLL_INTERVAL = 2.0
FAST = POLL_INTERVAL / 4
"""A pickup this fast did not wait for a poll (polling alone would give about POLL_INTERVAL / 2)."""


@dataclass
class Num:
    n: int


class ResStart(EntryJobType[Num, Num, "ResFinish"], name="nres_start"):
    """First job of every chain: always continues to ResFinish."""


class ResFinish(JobType[Num, Num], name="nres_finish"):
    """Second and last job: closes the chain with ``n * 3``."""


class Recorder:
    """Counts handler runs per job id and notes when each chain's first job started."""

    def __init__(self) -> None:
        self.executions: Counter[str] = Counter()
        self.committed: dict[int, float] = {}
        self.picked: dict[int, float] = {}
        self.finished: set[int] = set()
        self._changed = asyncio.Event()

    def handlers(self) -> dict[Any, Callable[[Attempt[Any]], Awaitable[None]]]:
        async def start(attempt: Attempt[ResStart]) -> None:
            self.executions[attempt.job.id] += 1
            self.picked.setdefault(attempt.input.n, asyncio.get_running_loop().time())
            await attempt.complete(ResFinish(Num(attempt.input.n)))

        async def finish(attempt: Attempt[ResFinish]) -> None:
            self.executions[attempt.job.id] += 1
            await attempt.complete(Num(attempt.input.n * 3))
            self.finished.add(attempt.input.n)
            self._changed.set()

        return {ResStart: start, ResFinish: finish}

    async def wait_finished(self, numbers: Iterable[int], timeout: float, what: str) -> None:
        wanted = set(numbers)

        async def reached() -> None:
            while not wanted <= self.finished:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(reached(), timeout)
        except asyncio.TimeoutError:
            missing = sorted(wanted - self.finished)
            raise AssertionError(
                f"{what}: {len(missing)} chains not processed within {timeout} s "
                f"(first: {missing[:5]})"
            ) from None


async def produce(
    client: Client[Any], recorder: Recorder, numbers: range, *, batch: int = 25, pause: float = 0.2
) -> None:
    """Starts one chain per number, ``batch`` per transaction, ``pause`` seconds apart."""
    loop = asyncio.get_running_loop()
    for offset in range(numbers.start, numbers.stop, batch):
        chunk = range(offset, min(offset + batch, numbers.stop))
        async with client.transaction() as tx:
            await client.start_chains([ResStart(Num(n)) for n in chunk], tx=tx)
        committed = loop.time()
        for n in chunk:
            recorder.committed[n] = committed
        await asyncio.sleep(pause)


async def probe(client: Client[Any], recorder: Recorder, n: int) -> tuple[float, float]:
    """One chain started on an idle worker: (seconds until its handler started, until
    ``wait_for_chain`` saw it closed). ``wait_for_chain`` re-reads only every 60 s here, so it returns
    early only on a chain-closed notification."""
    loop = asyncio.get_running_loop()
    async with client.transaction() as tx:
        chain = await client.start_chain(ResStart(Num(n)), tx=tx)
    committed = recorder.committed[n] = loop.time()
    result = await client.wait_for_chain(chain, timeout=3 * POLL_INTERVAL, poll_interval=60.0)
    assert result == Num(n * 3)
    return max(recorder.picked[n] - committed, 0.0), loop.time() - committed


async def eventually(
    predicate: Callable[[], bool], *, timeout: float, what: str, every: float = 0.05
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)


async def wait_idle(worker: Any) -> None:
    """Until the worker runs nothing (it then sleeps until a notification or its next poll)."""
    await eventually(lambda: worker.in_flight == 0, timeout=10, what="an idle worker", every=0.01)
    await asyncio.sleep(0.05)  # let it reach its sleep; the probe then measures only the wake-up


async def check_every_chain_once(client: Client[Any], recorder: Recorder, count: int) -> None:
    """Every chain 0..count-1 closed as completed with ``n * 3``, has exactly its two jobs, and each
    job's handler ran exactly once."""
    outputs: dict[int, Any] = {}
    cursor: str | None = None
    while True:
        page = await client.list_chains(type_names=["nres_start"], limit=1000, cursor=cursor)
        for chain in page.items:
            assert chain.outcome == "completed", (chain.id, chain.status, chain.outcome)
            n = chain.root.input.n
            assert n not in outputs, f"chain {n} exists twice"
            outputs[n] = chain.output
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(outputs) == list(range(count))
    assert all(outputs[n] == Num(n * 3) for n in outputs)

    jobs_per_chain: dict[str, list[str]] = {}
    cursor = None
    while True:
        jobs = await client.list_jobs(chain_type_names=["nres_start"], limit=1000, cursor=cursor)
        for job in jobs.items:
            jobs_per_chain.setdefault(job.chain_id, []).append(job.type_name)
        cursor = jobs.next_cursor
        if cursor is None:
            break
    assert len(jobs_per_chain) == count
    assert all(sorted(types) == ["nres_finish", "nres_start"] for types in jobs_per_chain.values())

    assert len(recorder.executions) == 2 * count, "every job ran"
    assert set(recorder.executions.values()) == {1}, "no job ran twice"
