"""Processing modes (atomic, staged, auto), misuse, errors, retries, attempts."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from queuert import (
    Attempt,
    Backoff,
    ChainFailedError,
    RescheduleJob,
    TxContext,
)
from queuert.observability import AttemptCompleted, AttemptFailed

from queuert_conformance.behaviour_suite.jobs import (
    ALL,
    Echo,
    Join,
    Leaf,
    Limited,
    Num,
    Ping,
    Text,
    Tolerant,
)
from queuert_conformance.behaviour_suite.support import MakeEnv, handler_entered


class TestModes:
    async def test_auto_mode_is_atomic_when_complete_comes_first(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)

        async def handle(attempt: Attempt[Echo]) -> Num:
            return Num(attempt.input.value)

        env.worker({Echo: handle})
        chain = await env.start_one(Echo(Num(7)))
        async with env._workers[0]:
            assert (await env.wait(chain)).value == 7
        (done,) = env.events.of(AttemptCompleted)
        assert done.mode == "atomic"

    async def test_auto_mode_is_staged_when_the_handler_awaits_first(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)

        async def handle(attempt: Attempt[Echo]) -> Num:
            await asyncio.sleep(0.01)
            return Num(attempt.input.value + 1)

        worker = env.worker({Echo: handle})
        chain = await env.start_one(Echo(Num(1)))
        async with worker:
            assert (await env.wait(chain)).value == 2
        (done,) = env.events.of(AttemptCompleted)
        assert done.mode == "staged"

    @pytest.mark.parametrize("mode", ["atomic", "staged"])
    async def test_explicit_prepare_runs_its_callback_in_a_transaction(
        self, queuert_env: MakeEnv, mode: str
    ) -> None:
        env = await queuert_env(job_types=ALL)
        seen: list[Any] = []

        async def handle(attempt: Attempt[Echo]) -> Num:
            async def prepare(ctx: TxContext[Any]) -> int:
                job = await env.state.get_job(attempt.job.id, tx=ctx.tx)
                assert job is not None
                return job.attempt

            seen.append(await attempt.prepare(mode, prepare))  # type: ignore[arg-type]
            await asyncio.sleep(0.01)
            return Num(attempt.input.value)

        worker = env.worker({Echo: handle})
        chain = await env.start_one(Echo(Num(3)))
        async with worker:
            await env.wait(chain)
        assert seen == [1]
        (done,) = env.events.of(AttemptCompleted)
        assert done.mode == mode

    async def test_the_attempt_is_recorded_before_the_handler_runs_even_in_atomic_mode(
        self, queuert_env: MakeEnv
    ) -> None:
        """A handler that kills the process must still count as an attempt (so a poison job backs off):
        the claim commits the attempt and the lease before the handler starts."""
        env = await queuert_env(job_types=ALL)
        entered = asyncio.Event()
        release = asyncio.Event()

        async def handle(attempt: Attempt[Echo]) -> Num:
            await attempt.prepare("atomic")
            entered.set()
            await release.wait()
            return Num(0)

        worker = env.worker({Echo: handle})
        chain = await env.start_one(Echo(Num(0)))
        async with worker:
            await handler_entered(entered)
            seen_from_outside = await env.client.get_job(chain.id)
            release.set()
            await env.wait(chain)
        assert seen_from_outside is not None
        assert seen_from_outside.attempt == 1
        assert seen_from_outside.status == "running"
        assert seen_from_outside.leased_by == worker.id


class TestMisuse:
    @pytest.mark.parametrize(
        ("misuse", "message"),
        [
            ("prepare_twice", "prepare can only be called once"),
            ("complete_twice", "complete can only be called once"),
            ("prepare_after_auto", "prepare cannot be called after"),
            ("complete_and_return", "called attempt.complete(...) and also returned a value"),
        ],
    )
    async def test_misuse_fails_the_attempt_with_a_clear_error(
        self, queuert_env: MakeEnv, misuse: str, message: str
    ) -> None:
        env = await queuert_env(job_types=ALL)

        async def handle(attempt: Attempt[Echo]) -> Num | None:
            if attempt.number > 1:
                return Num(attempt.number)
            if misuse == "prepare_twice":
                await attempt.prepare("staged")
                await attempt.prepare("staged")
            elif misuse == "complete_twice":
                await attempt.complete(Num(1))
                await attempt.complete(Num(2))
            elif misuse == "prepare_after_auto":
                await asyncio.sleep(0)
                await attempt.prepare("atomic")
            elif misuse == "complete_and_return":
                await attempt.complete(Num(1))
                return Num(1)
            return None

        worker = env.worker({Echo: handle})
        chain = await env.start_one(Echo(Num(0)))
        async with worker:
            assert (await env.wait(chain)).value == 2
        (failed,) = env.events.of(AttemptFailed)
        assert message in failed.error

    async def test_a_handler_that_completes_nothing_fails_its_chain_without_a_retry(
        self, queuert_env: MakeEnv
    ) -> None:
        """A retry would repeat what the handler did: the job closes as failed instead."""
        env = await queuert_env(job_types=ALL)
        runs = 0

        async def handle(attempt: Attempt[Echo]) -> None:
            nonlocal runs
            runs += 1

        worker = env.worker({Echo: handle})
        chain = await env.start_one(Echo(Num(0)))
        async with worker:
            with pytest.raises(ChainFailedError) as failed:
                await env.wait(chain)
        assert failed.value.error is not None
        assert "JobNotCompletedError" in failed.value.error
        (event,) = env.events.of(AttemptFailed)
        assert event.error_type == "JobNotCompletedError" and event.retry_at is None
        assert runs == 1

    async def test_a_handler_that_returns_nothing_completes_a_none_output_type(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        seen: list[int] = []

        async def handle(attempt: Attempt[Ping]) -> None:
            seen.append(attempt.input.value)

        worker = env.worker({Ping: handle})
        chain = await env.start_one(Ping(Num(3)))
        async with worker:
            assert await env.wait(chain) is None
        assert seen == [3]
        assert not env.events.of(AttemptFailed)


class TestErrors:
    @pytest.mark.parametrize("mode", ["atomic", "staged"])
    @pytest.mark.parametrize(
        "where", ["prepare_callback", "between", "complete_callback", "after_complete"]
    )
    async def test_an_error_anywhere_reschedules_and_rolls_back_the_completion(
        self, queuert_env: MakeEnv, mode: str, where: str
    ) -> None:
        env = await queuert_env(job_types=ALL)

        async def handle(attempt: Attempt[Echo]) -> None:
            first = attempt.number == 1

            async def prepare(ctx: TxContext[Any]) -> None:
                if first and where == "prepare_callback":
                    raise RuntimeError("boom in prepare")

            await attempt.prepare(mode, prepare)  # type: ignore[arg-type]
            if first and where == "between":
                raise RuntimeError("boom between")

            async def complete(ctx: TxContext[Any]) -> Num:
                if first and where == "complete_callback":
                    raise RuntimeError("boom in complete")
                return Num(attempt.number)

            await attempt.complete(complete)
            if first and where == "after_complete":
                raise RuntimeError("boom after complete")

        worker = env.worker({Echo: handle})
        chain = await env.start_one(Echo(Num(0)))
        async with worker:
            # The first attempt's completion must not survive its error: the output is the second's.
            assert (await env.wait(chain)).value == 2
        (failed,) = env.events.of(AttemptFailed)
        assert "boom" in failed.error
        job = await env.client.get_job(chain.id)
        assert job is not None
        assert job.attempt == 2
        assert job.last_attempt_error is None, "a later success clears the last error"

    @pytest.mark.parametrize("mode", ["atomic", "staged"])
    async def test_a_continuation_is_rolled_back_when_the_handler_fails_after_complete(
        self, queuert_env: MakeEnv, mode: str
    ) -> None:
        from queuert_conformance.behaviour_suite.jobs import Describe, Double, Start

        env = await queuert_env(job_types=ALL)

        async def start(attempt: Attempt[Start]) -> None:
            await attempt.prepare(mode)  # type: ignore[arg-type]
            await attempt.complete(Double(Num(attempt.number)))
            if attempt.number == 1:
                raise RuntimeError("after continuing")

        async def double(attempt: Attempt[Double]) -> Num:
            return Num(attempt.input.value * 2)

        async def describe(attempt: Attempt[Describe]) -> Text:
            return Text("unused")

        worker = env.worker({Start: start, Double: double, Describe: describe})
        chain = await env.start_one(Start(Num(0)))
        async with worker:
            assert (await env.wait(chain)).value == 4
        jobs = (await env.client.list_chain_jobs(chain.id)).items
        assert [j.type_name for j in jobs] == ["b_start", "b_double"]

    async def test_errors_are_recorded_and_backoff_grows(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        claimed: dict[int, datetime] = {}

        async def handle(attempt: Attempt[Echo]) -> Num:
            assert attempt.job.last_attempt_at is not None
            claimed[attempt.number] = attempt.job.last_attempt_at  # the store's clock at the claim
            if attempt.number <= 3:
                raise ValueError(f"failure {attempt.number}")
            return Num(attempt.number)

        worker = env.worker(
            {Echo: handle}, backoff=Backoff(initial=0.1, multiplier=2, maximum=10, jitter=0)
        )
        chain = await env.start_one(Echo(Num(0)))
        async with worker:
            assert (await env.wait(chain)).value == 4
        failures = env.events.of(AttemptFailed)
        assert [f.job.attempt for f in failures] == [1, 2, 3]
        assert [f.error_type for f in failures] == ["ValueError"] * 3
        # retry n is planned 0.1 * 2**(n-1) s after the failure, which follows the claim: measured
        # from the claim (both on the store's clock), each wait is at least its planned delay. The
        # third's bound (0.4 s) is four times the first delay, so a backoff that does not grow fails
        # here. (No upper bound: the time from a claim to its failure's write has none on a busy
        # machine.)
        delays = []
        for failed in failures:
            assert failed.retry_at is not None
            delays.append((failed.retry_at - claimed[failed.job.attempt]).total_seconds())
        for delay, planned in zip(delays, [0.1, 0.2, 0.4], strict=True):
            assert delay >= planned - 0.005, f"retry planned {delay:.3f}s after the claim: {delays}"

    async def test_the_last_error_is_visible_to_the_next_attempt(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        seen: list[str | None] = []

        async def handle(attempt: Attempt[Echo]) -> Num:
            seen.append(attempt.job.last_attempt_error)
            if attempt.number == 1:
                raise KeyError("missing thing")
            return Num(1)

        worker = env.worker({Echo: handle})
        chain = await env.start_one(Echo(Num(0)))
        async with worker:
            await env.wait(chain)
        assert seen[0] is None
        assert seen[1] is not None and "KeyError" in seen[1] and "missing thing" in seen[1]

    async def test_reschedule_job_retries_exactly_when_asked(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        times: list[datetime] = []

        async def handle(attempt: Attempt[Echo]) -> Num:
            times.append(datetime.now(timezone.utc))
            if attempt.number == 1:
                raise RescheduleJob(after=timedelta(seconds=0.4), reason="not yet")
            return Num(attempt.number)

        worker = env.worker({Echo: handle}, backoff=Backoff(initial=30, jitter=0))
        chain = await env.start_one(Echo(Num(0)))
        async with worker:
            await env.wait(chain)
        assert (times[1] - times[0]).total_seconds() >= 0.35
        (failed,) = env.events.of(AttemptFailed)
        assert failed.rescheduled_by_handler
        assert failed.error == "not yet"


class TestMaxAttempts:
    async def test_a_job_out_of_attempts_closes_its_chain_as_failed(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        calls = 0

        async def handle(attempt: Attempt[Limited]) -> None:
            nonlocal calls
            calls += 1
            raise RuntimeError("always broken")

        worker = env.worker({Limited: handle})
        chain = await env.start_one(Limited(Num(0)))
        async with worker:
            closed = await env.wait_closed(chain)
            with pytest.raises(ChainFailedError) as info:
                await env.wait(chain)
        assert closed.outcome == "failed"
        assert closed.tail.status == "failed"
        assert calls == 2
        assert "always broken" in (info.value.error or "")
        failures = env.events.of(AttemptFailed)
        assert [f.retry_at is None for f in failures] == [False, True]

    async def test_dependents_fail_or_proceed_as_their_type_declares(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)

        async def leaf(attempt: Attempt[Leaf]) -> Num:
            if attempt.input.value < 0:
                raise RuntimeError("negative leaf")
            return Num(attempt.input.value)

        async def join(attempt: Attempt[Join]) -> Num:
            return Num(sum(b.output.value for b in attempt.blockers))

        async def tolerant(attempt: Attempt[Tolerant]) -> Text:
            outcomes = ",".join(str(b.outcome) for b in attempt.blockers)
            return Text(outcomes)

        worker = env.worker({Join: join, Tolerant: tolerant})
        worker.register(Leaf, leaf, max_attempts=1)
        async with env.client.transaction() as tx:
            good, bad = await env.client.start_chains([Leaf(Num(1)), Leaf(Num(-1))], tx=tx)
            strict = await env.client.start_chain(Join(Text("j"), blockers=(good, bad)), tx=tx)
            lenient = await env.client.start_chain(Tolerant(Text("t"), blockers=(good, bad)), tx=tx)
        async with worker:
            assert (await env.wait_closed(strict)).outcome == "failed"
            assert (await env.wait(lenient)).text == "completed,failed"
