"""Periodic chains started by several worker processes on one store, one of them killed: each tick's
chain is still created once, and the survivors keep ticking.

Applies when the adapter declares ``capabilities.multi_process`` and the harness offers
``open_in_process`` (see :class:`queuert_conformance.StateHarness`).
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import traceback
from datetime import datetime, timedelta, timezone
from typing import Any

from queuert import Client, NoopNotifyAdapter, StateAdapter, Worker

from queuert_conformance.applicability import not_applicable, require_capability
from queuert_conformance.behaviour_suite.jobs import Echo
from queuert_conformance.behaviour_suite.periodics import echo, echo_every, started_ticks
from queuert_conformance.behaviour_suite.support import MakeEnv, eventually
from queuert_conformance.spawning import collect_reports, reap

PROCESSES = 3
EVERY = 0.3
PROCESS_TIMEOUT = 60.0


def _beat(open_adapter: Any, name: str, stop: Any, reports: Any) -> None:
    """Body of a worker process: run a worker with the periodic until a message arrives on the
    pipe ``stop`` (a pipe, not a shared lock: the test kills one of these processes, and a process
    killed while waiting on a multiprocessing Event or Condition breaks it for the others)."""
    try:
        asyncio.run(_run_worker(open_adapter, stop))
        reports.put((name, None))
    except BaseException:
        reports.put((name, traceback.format_exc()))


async def _run_worker(open_adapter: Any, stop: Any) -> None:
    adapter: StateAdapter[Any] = await open_adapter()
    try:
        client: Client[Any] = Client(adapter, job_types=[Echo], notify=NoopNotifyAdapter())
        async with Worker(
            client, handlers={Echo: echo}, periodic=[echo_every(EVERY)], poll_interval=0.1
        ):
            await asyncio.to_thread(stop.poll, PROCESS_TIMEOUT)
        await client.close()
    finally:
        await adapter.close()


class TestPeriodicProcesses:
    async def test_worker_processes_start_each_tick_once_and_survive_a_killed_one(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=[Echo])
        require_capability(env.capabilities, "multi_process")
        open_in_process = env.harness.open_in_process
        if open_in_process is None:
            not_applicable("open_in_process")
        every = timedelta(seconds=EVERY)
        context = multiprocessing.get_context("spawn")
        pipes = [context.Pipe() for _ in range(PROCESSES)]
        reports = context.Queue()
        processes = [
            context.Process(
                target=_beat,
                args=(open_in_process, f"periodic-{n}", pipes[n][1], reports),
                name=f"queuert-periodic-{n}",
                daemon=True,
            )
            for n in range(PROCESSES)
        ]
        try:
            for process in processes:
                process.start()

            async def ticking(count: int) -> bool:
                return len(await started_ticks(env)) >= count

            await eventually(lambda: ticking(2), timeout=PROCESS_TIMEOUT, what="two ticks")
            killed = processes[0]
            killed.kill()  # SIGKILL: no shutdown, no cleanup
            await asyncio.to_thread(killed.join, PROCESS_TIMEOUT)
            killed_at = datetime.now(timezone.utc)

            async def ticking_after_the_kill() -> bool:
                return len([t for t in await started_ticks(env) if t > killed_at]) >= 3

            await eventually(
                ticking_after_the_kill, timeout=PROCESS_TIMEOUT, what="ticks after the kill"
            )
            for sender, _ in pipes[1:]:
                sender.send("stop")
            survivors = processes[1:]
            got = await collect_reports(reports, survivors, len(survivors), PROCESS_TIMEOUT)
        finally:
            await reap(processes, PROCESS_TIMEOUT)
            reports.close()
            for sender, receiver in pipes:
                sender.close()
                receiver.close()

        errors = [f"--- {name}\n{error}" for name, error in got if error is not None]
        assert not errors, "a worker process failed:\n" + "\n".join(errors)
        ticks = await started_ticks(env)
        assert len(ticks) == len(set(ticks)), f"a tick's chain was started twice: {ticks}"
        for earlier, later in itertools.pairwise(ticks):
            assert (later - earlier) % every == timedelta(0), (
                f"ticks off the schedule: {earlier} then {later}"
            )
        chains = (await env.client.list_chains(type_names=[Echo], limit=1000)).items
        assert len(chains) == len(ticks), "every periodic chain carries its tick's key"
