"""Isolated handlers (``worker.isolated``): every way a handler's process can end badly fails only its
own attempt, with its own typed error, and the worker goes on with its other jobs.

The handlers are module-level functions: their processes import them from this module by name.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from queuert import (
    Attempt,
    Backoff,
    ChainFailedError,
    Client,
    Continues,
    CpuLimitError,
    EntryJobType,
    HandlerCrashedError,
    HardTimeoutError,
    InMemoryStateAdapter,
    IsolatedHandlerError,
    IsolatedJob,
    JobType,
    MemoryLimitError,
    RecordingObservability,
    UsageError,
    Worker,
)
from queuert.observability import AttemptFailed
from typing_extensions import Never

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process isolation is POSIX only")


@dataclass
class Num:
    value: int


@dataclass
class Pid:
    pid: int
    attempt: int


class Work(EntryJobType[Num, Pid], name="iso_work"):
    pass


class Once(EntryJobType[Num, Pid], name="iso_once", max_attempts=1):
    pass


class Hop(EntryJobType[Num, Never], Continues["Land"], name="iso_hop"):
    pass


class Land(JobType[Num, Num], name="iso_land"):
    pass


class Quick(EntryJobType[Num, Num], name="iso_quick"):
    pass


# -- handlers, run in the isolated processes ---------------------------------------------------


def report_pid(job: IsolatedJob[Work]) -> Pid:
    return Pid(os.getpid(), job.number)


def crash_first(job: IsolatedJob[Work]) -> Pid:
    if job.number == 1:
        os._exit(3)
    return Pid(os.getpid(), job.number)


def loop_forever(job: IsolatedJob[Once]) -> Pid:
    while True:
        pass


def hog_memory(job: IsolatedJob[Once]) -> Pid:
    hoard = []
    while True:
        hoard.append(bytearray(16 * 2**20))


def burn_cpu(job: IsolatedJob[Once]) -> Pid:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pass
    return Pid(os.getpid(), job.number)


def segfault(job: IsolatedJob[Once]) -> Pid:
    ctypes.string_at(0)
    return Pid(os.getpid(), job.number)


def exit_quietly(job: IsolatedJob[Once]) -> Pid:
    os._exit(0)


def raise_value_error(job: IsolatedJob[Once]) -> Pid:
    raise ValueError(f"bad value {job.input.value}")


def hop(job: IsolatedJob[Hop]) -> Land:
    return Land(Num(job.input.value + 1))


async def sleep_then_report(job: IsolatedJob[Work]) -> Pid:
    await asyncio.sleep(0)
    print("a handler's print goes to standard error, not into the pipe")
    return Pid(os.getpid(), job.number)


def sleep_long(job: IsolatedJob[Once]) -> Pid:
    time.sleep(60)
    return Pid(os.getpid(), job.number)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[Client[Any]]:
    state = InMemoryStateAdapter()
    events = RecordingObservability()
    c: Client[Any] = Client(state, job_types=[Work, Once, Hop, Land, Quick], observability=events)
    yield c
    await c.close()


def worker_for(client: Client[Any], **options: Any) -> Worker[Any]:
    options.setdefault("poll_interval", 0.05)
    options.setdefault("backoff", Backoff(initial=0.05, maximum=0.1, jitter=0.0))
    options.setdefault("shutdown_timeout", 2.0)
    return Worker(client, **options)


async def start(client: Client[Any], job: Any) -> Any:
    async with client.transaction() as tx:
        return await client.start_chain(job, tx=tx)


def failures(client: Client[Any]) -> list[AttemptFailed]:
    events = client.observability
    assert isinstance(events, RecordingObservability)
    return events.of(AttemptFailed)


async def fails_with(client: Client[Any], chain: Any, error: type[BaseException]) -> str:
    with pytest.raises(ChainFailedError):
        await client.wait_for_chain(chain, timeout=20, poll_interval=0.05)
    (failed,) = failures(client)
    assert failed.error_type == error.__name__
    return failed.error


# -- the tests -----------------------------------------------------------------------------------


async def test_the_handler_runs_in_another_process_and_its_output_crosses_back(
    client: Client[Any],
) -> None:
    worker = worker_for(client)
    worker.isolated(Work, hard_timeout=10)(report_pid)
    chains = [await start(client, Work(Num(i))) for i in range(3)]
    async with worker:
        results = [await client.wait_for_chain(c, timeout=20, poll_interval=0.05) for c in chains]
    assert all(isinstance(r, Pid) and r.attempt == 1 for r in results)
    assert {r.pid for r in results} and os.getpid() not in {r.pid for r in results}


async def test_an_async_handler_runs_too_and_its_prints_do_not_break_the_pipe(
    client: Client[Any],
) -> None:
    worker = worker_for(client)
    worker.isolated(Work, hard_timeout=10)(sleep_then_report)
    chain = await start(client, Work(Num(1)))
    async with worker:
        result = await client.wait_for_chain(chain, timeout=20, poll_interval=0.05)
    assert result.pid != os.getpid()


async def test_a_continuation_crosses_back_as_its_job_type(client: Client[Any]) -> None:
    worker = worker_for(client)
    worker.isolated(Hop, hard_timeout=10)(hop)

    @worker.handler(Land)
    async def land(attempt: Attempt[Land]) -> Num:
        return Num(attempt.input.value * 10)

    chain = await start(client, Hop(Num(4)))
    async with worker:
        assert await client.wait_for_chain(chain, timeout=20, poll_interval=0.05) == Num(50)


async def test_a_crashed_process_is_replaced_and_the_attempt_retried(client: Client[Any]) -> None:
    worker = worker_for(client)
    worker.isolated(Work, hard_timeout=10, processes=1)(crash_first)
    chain = await start(client, Work(Num(1)))
    async with worker:
        result = await client.wait_for_chain(chain, timeout=20, poll_interval=0.05)
    assert result.attempt == 2
    (failed,) = failures(client)
    assert failed.error_type == HandlerCrashedError.__name__
    assert "exited with code 3" in failed.error
    assert failed.retry_at is not None, "a crash is retried with backoff"


async def test_an_endless_loop_is_killed_at_its_hard_timeout_while_other_jobs_go_on(
    client: Client[Any],
) -> None:
    worker = worker_for(client, concurrency=4)
    worker.isolated(Once, hard_timeout=0.5)(loop_forever)

    @worker.handler(Quick)
    async def quick(attempt: Attempt[Quick]) -> Num:
        return attempt.input

    stuck = await start(client, Once(Num(1)))
    others = [await start(client, Quick(Num(i))) for i in range(5)]
    loop = asyncio.get_running_loop()
    async with worker:
        pool = worker._pools[0]

        async def sent_time() -> float:
            """When the process, started (its start-up is no part of the timeout), took the job."""
            await pool.job_sent.wait()
            return loop.time()

        sent = asyncio.ensure_future(sent_time())
        for i, other in enumerate(others):
            assert await client.wait_for_chain(other, timeout=20, poll_interval=0.05) == Num(i)
        sent_at = await asyncio.wait_for(sent, 20)
        message = await fails_with(client, stuck, HardTimeoutError)
        ended_at = loop.time()
    assert "hard timeout of 0.5s" in message
    (failed,) = failures(client)
    assert failed.duration >= 0.5
    # the attempt that never ends on its own ends at its timeout after its process took it (give
    # or take the kill's round trip and the wait's poll on a busy machine), not at some other bound
    assert ended_at - sent_at < 5


async def test_a_memory_hog_is_stopped_at_its_limit(client: Client[Any]) -> None:
    worker = worker_for(client)
    worker.isolated(Once, hard_timeout=20, memory_limit=400 * 2**20)(hog_memory)
    chain = await start(client, Once(Num(1)))
    async with worker:
        message = await fails_with(client, chain, MemoryLimitError)
    assert f"memory limit of {400 * 2**20} bytes" in message


async def test_a_cpu_burner_is_killed_at_its_cpu_limit(client: Client[Any]) -> None:
    worker = worker_for(client)
    worker.isolated(Once, hard_timeout=20, cpu_limit=1)(burn_cpu)
    chain = await start(client, Once(Num(1)))
    async with worker:
        message = await fails_with(client, chain, CpuLimitError)
    assert "CPU limit of 1s" in message


async def test_a_segmentation_fault_fails_only_its_attempt(client: Client[Any]) -> None:
    worker = worker_for(client)
    worker.isolated(Once, hard_timeout=10)(segfault)
    chain = await start(client, Once(Num(1)))
    async with worker:
        message = await fails_with(client, chain, HandlerCrashedError)
    assert "SIGSEGV" in message


async def test_os_exit_without_an_answer_is_a_crash(client: Client[Any]) -> None:
    worker = worker_for(client)
    worker.isolated(Once, hard_timeout=10)(exit_quietly)
    chain = await start(client, Once(Num(1)))
    async with worker:
        message = await fails_with(client, chain, HandlerCrashedError)
    assert "exited with code 0" in message


async def test_an_exception_in_the_handler_is_recorded_with_its_type(client: Client[Any]) -> None:
    worker = worker_for(client)
    worker.isolated(Once, hard_timeout=10)(raise_value_error)
    chain = await start(client, Once(Num(7)))
    async with worker:
        message = await fails_with(client, chain, IsolatedHandlerError)
    assert "ValueError: bad value 7" in message


async def test_closing_the_worker_kills_a_running_isolated_handler_in_bounded_time(
    client: Client[Any],
) -> None:
    worker = worker_for(client, shutdown_timeout=0.5)
    worker.isolated(Once, hard_timeout=120)(sleep_long)
    pool = worker._pools[0]
    await start(client, Once(Num(1)))
    await worker.start()

    await asyncio.wait_for(pool.job_sent.wait(), 10)  # its process started and took the job
    (child,) = pool._live
    began = time.monotonic()
    await worker.close()
    assert time.monotonic() - began < 0.5 + 1.5 + 2.5, "shutdown is bounded"
    assert child.proc.returncode is not None, "no process outlives the worker"
    assert pool._live == set()


def sleep_briefly(job: IsolatedJob[Work]) -> Pid:
    time.sleep(0.5)
    return Pid(os.getpid(), job.number)


async def test_ctrl_c_reaching_the_process_group_does_not_fail_an_isolated_job(
    client: Client[Any],
) -> None:
    """SIGINT (a terminal's Ctrl-C goes to every process of the group) is the worker's to handle:
    the handler's process ignores it and finishes its job."""
    worker = worker_for(client)
    worker.isolated(Work, hard_timeout=10)(sleep_briefly)
    pool = worker._pools[0]
    chain = await start(client, Work(Num(1)))
    async with worker:
        await asyncio.wait_for(pool.job_sent.wait(), 10)
        (child,) = pool._live
        child.proc.send_signal(signal.SIGINT)
        result = await client.wait_for_chain(chain, timeout=20, poll_interval=0.05)
    assert result.attempt == 1 and failures(client) == []


def test_bad_arguments_are_refused_before_anything_runs(client: Client[Any]) -> None:
    worker = worker_for(client)
    with pytest.raises(UsageError):
        worker.isolated(Work, hard_timeout=0)
    with pytest.raises(UsageError):
        worker.isolated(Work, hard_timeout=1, memory_limit=0)
    with pytest.raises(UsageError):
        worker.isolated(Work, hard_timeout=1, processes=0)

    def local(job: IsolatedJob[Work]) -> Pid:
        return Pid(0, 0)

    with pytest.raises(UsageError, match="module level"):
        worker.isolated(Work, hard_timeout=1)(local)
    assert worker.type_names == []
