"""Worker lifecycle: pickup, order, concurrency, batching, middleware, leases, reaper, shutdown, recovery."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from queuert import Attempt, Backoff, Lease, TxContext
from queuert.observability import AttemptCompleted, JobReaped, LeaseLost, WorkerError

from queuert_conformance.behaviour_suite.faults import CountingStateAdapter, FlakyStateAdapter
from queuert_conformance.behaviour_suite.jobs import ALL, Echo, Num, Ping
from queuert_conformance.behaviour_suite.support import (
    MakeEnv,
    eventually,
    handler_entered,
    stall_lease_renewal,
)


async def _echo(attempt: Attempt[Echo]) -> Num:
    return Num(attempt.input.value)


class TestPickup:
    async def test_jobs_created_before_and_while_the_worker_runs_are_processed(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        before = await env.start_one(Echo(Num(1)))
        async with env.worker({Echo: _echo}, poll_interval=0.2):
            assert (await env.wait(before)).value == 1
            during = await env.start_one(Echo(Num(2)))
            assert (await env.wait(during)).value == 2

    async def test_one_slot_processes_in_fifo_order(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        seen: list[int] = []

        async def handle(attempt: Attempt[Echo]) -> Num:
            seen.append(attempt.input.value)
            return Num(0)

        chains = []
        for i in range(5):
            chains.append(await env.start_one(Echo(Num(i))))
        async with env.worker({Echo: handle}, concurrency=1):
            for chain in chains:
                await env.wait(chain)
        assert seen == [0, 1, 2, 3, 4]

    async def test_concurrency_is_used_and_never_exceeded(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        running = 0
        peak = 0

        async def handle(attempt: Attempt[Echo]) -> Num:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.05)
            running -= 1
            return Num(0)

        chains = await env.start(*(Echo(Num(i)) for i in range(12)))
        async with env.worker({Echo: handle}, concurrency=4):
            for chain in chains:
                await env.wait(chain)
        assert peak == 4

    async def test_free_slots_are_filled_by_one_batched_claim(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        counting = CountingStateAdapter(env.state)
        client = env.another_client(state=counting)
        chains = await env.start(*(Echo(Num(i)) for i in range(5)))
        async with env.worker({Echo: _echo}, client=client, concurrency=5):
            for chain in chains:
                await env.wait(chain)
        assert max(counting.claimed_per_call) == 5

    async def test_a_worker_with_slow_handlers_leaves_waiting_jobs_to_others(
        self, queuert_env: MakeEnv
    ) -> None:
        """Claimed jobs may wait in a worker's prefetch buffer only while its handlers are short."""
        env = await queuert_env(job_types=ALL)
        seen_by: list[str] = []

        def handler(name: str) -> Callable[[Attempt[Echo]], Awaitable[Num]]:
            async def slow(attempt: Attempt[Echo]) -> Num:
                seen_by.append(name)
                await asyncio.sleep(0.3)
                return Num(0)

            return slow

        chains = await env.start(*(Echo(Num(i)) for i in range(4)))
        first = env.worker({Echo: handler("first")}, concurrency=1)
        second = env.worker({Echo: handler("second")}, concurrency=1, client=env.another_client())
        async with first:
            await eventually(lambda: bool(seen_by), what="the first worker to start a job")
            async with second:
                for chain in chains:
                    await env.wait(chain)
        assert seen_by.count("second") >= 1, seen_by

    async def test_middleware_wraps_every_attempt_in_order(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        trace: list[str] = []

        def layer(
            name: str,
        ) -> Callable[[Attempt[Any], Callable[[], Awaitable[None]]], Awaitable[None]]:
            async def middleware(
                attempt: Attempt[Any], call_next: Callable[[], Awaitable[None]]
            ) -> None:
                trace.append(f"{name}>")
                attempt.context.setdefault("layers", []).append(name)
                await call_next()
                trace.append(f"<{name}")

            return middleware

        async def handle(attempt: Attempt[Echo]) -> Num:
            trace.append("handler:" + ",".join(attempt.context["layers"]))
            return Num(0)

        chain = await env.start_one(Echo(Num(0)))
        async with env.worker({Echo: handle}, middleware=[layer("outer"), layer("inner")]):
            await env.wait(chain)
        assert trace == ["outer>", "inner>", "handler:outer,inner", "<inner", "<outer"]


class TestLeases:
    async def test_a_job_longer_than_its_lease_keeps_it_and_runs_once(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        runs = 0

        async def slow(attempt: Attempt[Echo]) -> Num:
            nonlocal runs
            runs += 1
            await asyncio.sleep(1.2)
            return Num(runs)

        lease = Lease(duration=0.4, renew_every=0.1)
        chain = await env.start_one(Echo(Num(0)))
        first = env.worker({Echo: slow}, lease=lease, concurrency=2)
        second = env.worker({Echo: slow}, lease=lease, client=env.another_client())
        async with first, second:
            result = await env.wait(chain, what="a job running longer than its renewed lease")
        reaped = env.events.of(JobReaped)
        assert not reaped, (
            f"lease was not renewed: the job was reaped from {reaped[0].leased_by} by "
            f"{reaped[0].worker_id} while its handler ran (renew_leases did not extend it)"
        )
        assert runs == 1, (
            f"lease was not renewed: the job ran {runs} times (reclaimed by another worker)"
        )
        assert result.value == 1

    async def test_all_leases_of_a_worker_are_renewed_in_one_operation(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        counting = CountingStateAdapter(env.state)
        client = env.another_client(state=counting)
        release = asyncio.Event()
        running = 0

        async def slow(attempt: Attempt[Echo]) -> Num:
            nonlocal running
            await attempt.prepare("staged")
            running += 1
            await release.wait()
            return Num(0)

        chains = await env.start(*(Echo(Num(i)) for i in range(3)))
        lease = Lease(duration=1.0, renew_every=0.1)
        async with env.worker({Echo: slow}, client=client, concurrency=3, lease=lease):
            await eventually(lambda: running == 3, what="three jobs running")
            before = len(counting.renewed_per_call)
            await eventually(
                lambda: len(counting.renewed_per_call) >= before + 3, what="three renewal rounds"
            )
            release.set()
            for chain in chains:
                await env.wait(chain)
        rounds = counting.renewed_per_call[before : before + 3]
        assert rounds == [3, 3, 3], (
            f"one renew_leases call per interval covers every running job; the calls renewed "
            f"{rounds} jobs"
        )

    async def test_jobs_of_a_dead_worker_are_reaped_and_processed(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        chain = await env.start_one(Echo(Num(3)))
        claim = await env.state.claim_jobs(
            leases={"b_echo": timedelta(seconds=0.3)}, limit=1, worker_id="dead-worker"
        )
        assert [j.id for j in claim.jobs] == [chain.id]
        async with env.worker({Echo: _echo}, reap_interval=0.1):
            result = await env.wait(chain, what="a job whose worker died (its lease expires)")
        reaped = env.events.of(JobReaped)
        assert [(r.job.id, r.leased_by) for r in reaped] == [(chain.id, "dead-worker")], (
            f"an expired lease is reaped once, from the worker that held it; reaped: {reaped}"
        )
        assert result.value == 3
        job = await env.client.get_job(chain.id)
        assert job is not None and job.attempt == 2, (
            f"the reaped job is claimed again as attempt 2, stored attempt="
            f"{None if job is None else job.attempt}"
        )

    async def test_a_worker_that_lost_its_lease_is_cancelled_and_cannot_complete(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        stalled_entered = asyncio.Event()
        reasons: list[str | None] = []
        completions: list[str] = []

        async def stalled(attempt: Attempt[Echo]) -> None:
            await attempt.prepare("staged")
            stalled_entered.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                reasons.append(attempt.signal.reason)
                raise
            completions.append("stalled")

        async def healthy(attempt: Attempt[Echo]) -> Num:
            completions.append("healthy")
            return Num(1)

        lease = Lease(duration=0.3, renew_every=0.1)
        chain = await env.start_one(Echo(Num(0)))
        first = env.worker({Echo: stalled}, lease=lease)
        async with first:
            await handler_entered(stalled_entered)
            resume = stall_lease_renewal(first)  # the first worker stalls: its lease expires
            second = env.worker(
                {Echo: healthy}, lease=lease, client=env.another_client(), reap_interval=0.1
            )
            async with second:
                result = await env.wait(chain, what="a job whose worker stalled past its lease")
                assert result.value == 1, (
                    f"the job must be completed by the worker that reclaimed it, got {result.value}"
                )
                resume()  # the stall ends: the next renewal (or the notification) tells it the job is gone
                await eventually(lambda: bool(reasons), what="the stalled handler to be cancelled")
        # Once told, the first worker's slot is free: it may claim the reaped job again before the
        # second worker does and lose it again the same way, so it can be told more than once.
        assert reasons
        assert set(reasons) <= {"taken_by_another_worker", "already_completed"}, reasons
        assert completions == ["healthy"], (
            f"a worker that lost its lease must not complete the job; completions: {completions}"
        )

    @pytest.mark.parametrize("mode", ["atomic", "staged"])
    async def test_an_attempt_that_lost_its_lease_commits_none_of_its_writes(
        self, queuert_env: MakeEnv, mode: str
    ) -> None:
        """What a handler writes in the job's transaction commits only with the job's completion,
        and the completion only while the worker still holds the lease: when another worker took
        the job meanwhile, the whole transaction rolls back, the handler's writes with it."""
        env = await queuert_env(job_types=ALL)
        entered = asyncio.Event()
        taken = asyncio.Event()

        async def handle(attempt: Attempt[Echo]) -> None:
            await attempt.prepare(mode)  # type: ignore[arg-type]
            entered.set()
            await taken.wait()  # meanwhile another worker took the job; nobody tells this one

            async def write(ctx: TxContext[Any]) -> Num:
                await ctx.start_chain(Ping(Num(1)))  # the handler's own row
                return Num(1)

            await attempt.complete(write)

        worker = env.worker({Echo: handle}, lease=Lease(duration=0.3, renew_every=0.1))
        async with worker:
            resume = stall_lease_renewal(worker)  # the worker stalls: its lease expires
            chain = await env.start_one(Echo(Num(0)))
            await handler_entered(entered)

            async def reaped() -> bool:
                return bool(await env.state.reap_expired_leases(["b_echo"], limit=1))

            # another worker's reaper takes the job back and another worker claims it, through the
            # state adapter (no ownership-lost notification)
            # bounded: a transaction opened at prepare("atomic") would keep other writers waiting
            await asyncio.wait_for(
                eventually(reaped, what="the stalled worker's lease to expire and be reaped"), 15
            )
            claim = await env.state.claim_jobs(
                leases={"b_echo": timedelta(minutes=5)}, limit=1, worker_id="other-worker"
            )
            assert [j.id for j in claim.jobs] == [chain.id]
            taken.set()
            await eventually(lambda: worker.processed >= 1, what="the first attempt to end")
            resume()
        job = await env.client.get_job(chain.id)
        assert job is not None and job.status == "running" and job.leased_by == "other-worker", (
            f"the completion of an attempt that lost its lease must be refused: {job}"
        )
        written = (await env.client.list_chains(type_names=["b_ping"])).items
        assert written == [], "the handler's write committed although its attempt lost the job"
        assert not env.events.of(AttemptCompleted)
        assert [e.reason for e in env.events.of(LeaseLost)] == ["taken_by_another_worker"]


class TestShutdown:
    async def test_handlers_are_told_and_may_finish(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        entered = asyncio.Event()

        async def handle(attempt: Attempt[Echo]) -> Num:
            entered.set()
            reason = await attempt.signal.wait()
            return Num(1 if reason == "shutdown" else -1)

        chain = await env.start_one(Echo(Num(0)))
        worker = env.worker({Echo: handle}, shutdown_timeout=5)
        await worker.start()
        await handler_entered(entered)
        await worker.close()
        assert (await env.wait(chain, timeout=1)).value == 1

    async def test_shutdown_is_bounded_and_returns_unfinished_jobs(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        entered = asyncio.Event()

        async def stubborn(attempt: Attempt[Echo]) -> None:
            await attempt.prepare("staged")
            entered.set()
            await asyncio.sleep(60)

        chain = await env.start_one(Echo(Num(4)))
        worker = env.worker({Echo: stubborn}, shutdown_timeout=0.3)
        await worker.start()
        await handler_entered(entered)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await worker.close()
        assert loop.time() - started < 5
        assert not worker._tasks, "close() awaited every task it started"
        assert not [
            t for t in asyncio.all_tasks() if t.get_name().startswith("queuert-") and not t.done()
        ]
        job = await env.client.get_job(chain.id)
        assert (
            job is not None and job.status == "ready" and job.leased_by is None and job.attempt == 1
        )
        async with env.worker({Echo: _echo}):
            assert (await env.wait(chain)).value == 4

    async def test_a_handler_that_ignores_cancellation_does_not_hold_up_close(
        self, queuert_env: MakeEnv
    ) -> None:
        """close() returns within shutdown_timeout plus the cleanup grace (here 0.3 + 1.3 s) even if
        a handler swallows every cancellation; its job is not released (it may still be running)
        but left to its lease, so no other worker runs it meanwhile."""
        env = await queuert_env(job_types=ALL)
        entered, let_go, ended = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def swallows(attempt: Attempt[Echo]) -> None:
            entered.set()
            try:
                while not let_go.is_set():
                    with contextlib.suppress(asyncio.CancelledError):
                        await let_go.wait()
            finally:
                ended.set()

        chain = await env.start_one(Echo(Num(5)))
        worker = env.worker({Echo: swallows}, shutdown_timeout=0.3)
        await worker.start()
        await asyncio.wait_for(entered.wait(), 5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(worker.close(), 10)
        assert loop.time() - started < 4, "close() waited for a handler that ignores cancellation"
        assert not worker._tasks, "close() awaited every task it started"
        job = await env.client.get_job(chain.id)
        assert job is not None and job.status == "running", (
            f"the abandoned handler's job was released ({job and job.status}) while it may run"
        )
        let_go.set()
        await asyncio.wait_for(ended.wait(), 5)


class TestWorkerRecovery:
    async def test_recovery_backoff_grows_and_resets_after_success(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        flaky = FlakyStateAdapter(
            env.state, fail_only=("claim_jobs",), pattern=[True, True, True, False, True, True]
        )
        client = env.another_client(state=flaky)
        worker = env.worker(
            {Echo: _echo},
            client=client,
            recovery_backoff=Backoff(initial=0.05, multiplier=2, maximum=5, jitter=0),
            poll_interval=0.05,
        )
        async with worker:
            await eventually(
                lambda: len(env.events.of(WorkerError)) >= 5, what="five worker errors"
            )
        delays = [e.retry_in for e in env.events.of(WorkerError)][:5]
        assert delays == [0.05, 0.1, 0.2, 0.05, 0.1]
