"""Scheduling and retries: run later, retry with backoff, reschedule on request, give up.

    uv run python -m examples.scheduling_and_retries

* ``Schedule(at=...)`` / ``Schedule(after=...)`` delay a chain start (continuations take them too);
* a failing handler is retried with exponential backoff and jitter (``Backoff``), and the next attempt
  sees the previous error;
* ``raise RescheduleJob(after=...)`` retries exactly when asked (e.g. an API said "retry in 0.3 s");
  like every duration, ``after`` takes a ``timedelta`` or a number of seconds;
* ``max_attempts`` (opt-in) closes the chain as *failed* once it is used up; ``wait_for_chain`` then
  raises ``ChainFailedError``.

The failed attempts also show up on stderr: the default ``LoggingObservability`` logs them as warnings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from queuert import (
    Attempt,
    Backoff,
    ChainFailedError,
    Client,
    EntryJobType,
    InMemoryStateAdapter,
    RescheduleJob,
    Schedule,
    Worker,
)


@dataclass
class Request:
    name: str


@dataclass
class Done:
    name: str
    attempts: int


class Remind(EntryJobType[Request, Done]):
    pass


class CallFlakyApi(EntryJobType[Request, Done]):
    pass


class CallRateLimitedApi(EntryJobType[Request, Done]):
    pass


class ImportBrokenFile(EntryJobType[Request, Done], max_attempts=3):  # gives up after 3 attempts
    pass


class CallHangingApi(EntryJobType[Request, Done]):
    pass


def build_worker(client: Client[Any], say: Callable[[str], None]) -> Worker[Any]:
    # Short delays so the example runs in about a second; the default backoff is 10 s, x2, up to
    # 300 s. Durations take a timedelta or a number of seconds.
    worker: Worker[Any] = Worker(
        client,
        concurrency=4,
        backoff=Backoff(initial=0.1, multiplier=2.0, maximum=timedelta(seconds=1), jitter=0.1),
    )

    @worker.handler(Remind)
    async def remind(attempt: Attempt[Remind]) -> Done:
        say(f"reminder {attempt.input.name!r} runs")
        return Done(attempt.input.name, attempt.number)

    @worker.handler(CallFlakyApi)
    async def call_flaky(attempt: Attempt[CallFlakyApi]) -> Done:
        previous = (attempt.job.last_attempt_error or "").split("\n")[0]
        say(
            f"flaky api attempt {attempt.number}"
            + (f" (last error: {previous})" if previous else "")
        )
        if attempt.number < 3:
            raise ConnectionError("gateway timeout")
        return Done(attempt.input.name, attempt.number)

    @worker.handler(CallRateLimitedApi)
    async def call_rate_limited(attempt: Attempt[CallRateLimitedApi]) -> Done:
        say(f"rate-limited api attempt {attempt.number}")
        if attempt.number == 1:
            raise RescheduleJob(after=0.3, reason="429: retry in 0.3 s")
        return Done(attempt.input.name, attempt.number)

    # A per-handler backoff overrides the worker's default.
    @worker.handler(ImportBrokenFile, backoff=Backoff(initial=0.05, jitter=0.0))
    async def import_file(attempt: Attempt[ImportBrokenFile]) -> Done:
        say(f"import attempt {attempt.number}")
        raise ValueError("line 3: unexpected end of file")

    # A timeout cancels an attempt that runs too long; it fails (AttemptTimeoutError) and retries.
    @worker.handler(CallHangingApi, timeout=0.2)
    async def call_hanging(attempt: Attempt[CallHangingApi]) -> Done:
        say(f"hanging api attempt {attempt.number}")
        if attempt.number == 1:
            try:
                await asyncio.sleep(60)  # the first call hangs
            except asyncio.CancelledError:
                say(f"hanging api attempt 1 told: {attempt.signal.reason}")
                raise
        return Done(attempt.input.name, attempt.number)

    return worker


async def main() -> dict[str, Any]:
    started = time.monotonic()
    log: list[str] = []

    def say(line: str) -> None:
        log.append(line)
        print(f"[{time.monotonic() - started:4.2f}s] {line}")

    results: dict[str, Any] = {}
    async with InMemoryStateAdapter() as state, Client(state) as client:
        worker = build_worker(client, say)
        now = datetime.now(timezone.utc)
        async with client.transaction() as tx:
            at = await client.start_chain(
                Remind(Request("at"), schedule=Schedule(at=now + timedelta(seconds=0.5))), tx=tx
            )
            after = await client.start_chain(
                Remind(Request("after"), schedule=Schedule(after=timedelta(seconds=0.2))), tx=tx
            )
            flaky = await client.start_chain(CallFlakyApi(Request("flaky")), tx=tx)
            limited = await client.start_chain(CallRateLimitedApi(Request("limited")), tx=tx)
            broken = await client.start_chain(ImportBrokenFile(Request("broken")), tx=tx)
            hanging = await client.start_chain(CallHangingApi(Request("hanging")), tx=tx)
        say(f"scheduled chains start as {at.root.status!r}, the others as {flaky.root.status!r}")

        async with worker:
            for chain in (after, at, flaky, limited, hanging):
                results[chain.input.name] = await client.wait_for_chain(chain, timeout=10)
            try:
                await client.wait_for_chain(broken, timeout=10)
            except ChainFailedError as failed:
                say(f"import gave up: {(failed.error or '').splitlines()[0]}")
        closed = await client.get_chain(broken.id, ImportBrokenFile)
        assert closed is not None
        say(f"import chain: outcome {closed.outcome!r} after {closed.tail.attempt} attempts")
        results["broken"] = closed
        results["log"] = log
    return results


if __name__ == "__main__":
    asyncio.run(main())
