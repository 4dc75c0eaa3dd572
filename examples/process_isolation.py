"""Process isolation: handlers that may hang, eat memory or crash run in processes of their own, with
hard limits, and only their own attempt pays.

    uv run python -m examples.process_isolation

``render`` runs in a pool of processes the worker owns, with a hard timeout of 3 s and a memory
limit of 256 MiB. A page that makes it loop forever is killed at the timeout, one that makes it eat
memory is stopped at the limit, and a crash (``os._exit``) on the first attempt is retried in a new
process: each failure is recorded with its own error type, and the other pages render meanwhile.
The handler must be a module-level function: its process imports it by name.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from queuert import (
    Backoff,
    ChainFailedError,
    Client,
    EntryJobType,
    InMemoryStateAdapter,
    IsolatedJob,
    RecordingObservability,
    Worker,
)
from queuert.observability import AttemptFailed


@dataclass
class Page:
    name: str


@dataclass
class Rendered:
    name: str
    pid: int


class Render(EntryJobType[Page, Rendered], name="render_page", max_attempts=2):
    pass


def render(job: IsolatedJob[Render]) -> Rendered:
    """Runs in a process of the pool; a bad page misbehaves in the ways that kill in-process work."""
    name = job.input.name
    if name == "endless":
        while True:
            pass
    if name == "greedy":
        hoard = []
        while True:
            hoard.append(bytearray(32 * 2**20))
    if name == "flaky" and job.number == 1:
        os._exit(1)  # the process dies; the retry runs in a new one
    return Rendered(name, os.getpid())


async def main() -> dict[str, Any]:
    events = RecordingObservability()
    async with InMemoryStateAdapter() as state, Client(state, observability=events) as client:
        worker = Worker(client, concurrency=4, backoff=Backoff(initial=0.1, jitter=0.0))
        worker.isolated(Render, hard_timeout=3, memory_limit=256 * 2**20, processes=2)(render)
        names = ["home", "endless", "greedy", "flaky", "about"]
        async with client.transaction() as tx:
            chains = await client.start_chains([Render(Page(n)) for n in names], tx=tx)
        outcomes: dict[str, str] = {}
        async with worker:
            for name, chain in zip(names, chains, strict=True):
                try:
                    done = await client.wait_for_chain(chain, timeout=30)
                    outcomes[name] = "rendered" + (" after a retry" if name == "flaky" else "")
                    assert done.pid != os.getpid()
                except ChainFailedError:
                    outcomes[name] = "failed"
        for name, outcome in outcomes.items():
            print(f"{name:<8} {outcome}")
        errors = sorted({e.error_type for e in events.of(AttemptFailed)})
        print("attempt errors:", ", ".join(errors))
        return {"outcomes": outcomes, "errors": errors}


if __name__ == "__main__":
    asyncio.run(main())
