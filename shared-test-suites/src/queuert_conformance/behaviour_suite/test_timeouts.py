"""Attempt timeouts, on every adapter: a handler registered with ``timeout=`` is cancelled when its
attempt runs longer (``attempt.signal.reason == "timeout"``), the attempt fails with
``AttemptTimeoutError`` and is retried with backoff like any failure."""

from __future__ import annotations

import asyncio

from queuert import Attempt, AttemptTimeoutError, CancelReason
from queuert.observability import AttemptFailed

from queuert_conformance.behaviour_suite.jobs import ALL, Echo, Num
from queuert_conformance.behaviour_suite.support import MakeEnv


class TestAttemptTimeout:
    async def test_a_slow_attempt_is_cancelled_failed_and_retried(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        told: list[CancelReason | None] = []

        async def handle(attempt: Attempt[Echo]) -> Num:
            if attempt.number == 1:
                try:
                    await asyncio.Event().wait()  # never set: only the timeout ends it
                finally:
                    told.append(attempt.signal.reason)
            return Num(attempt.number)

        worker = env.worker()
        worker.register(Echo, handle, timeout=0.3)
        chain = await env.start_one(Echo(Num(0)))
        async with worker:
            assert (await env.wait(chain)).value == 2
        assert told == ["timeout"]
        (failed,) = env.events.of(AttemptFailed)
        assert failed.error_type == AttemptTimeoutError.__name__
        assert "timeout of 0.3s" in failed.error
        assert failed.retry_at is not None, "a timed-out attempt is retried"
