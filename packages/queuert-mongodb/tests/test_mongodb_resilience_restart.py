"""Resilience: a private SecantusDB shuts down and starts again while a worker processes chains,
dropping every connection (the state adapter's and the change streams'). Every chain still
completes exactly once, and the same worker goes on: a batch started after the restart completes
too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from mongo_helpers import unique_prefix
from mongo_resilience_support import Rig, check_exactly_once, start_audit, wait_all_closed
from mongo_server import SecantusServer
from queuert_conformance.resilience import start_workload


@pytest.fixture
async def server() -> AsyncIterator[SecantusServer]:
    private = SecantusServer()
    await asyncio.to_thread(private.start)
    try:
        yield private
    finally:
        await asyncio.to_thread(private.remove)


async def test_a_server_restart_during_processing(server: SecantusServer) -> None:
    url, prefix = server.url, unique_prefix()
    since = await start_audit(url)
    async with Rig(prefix, url, poll_interval=0.5) as rig:
        work = await start_workload(rig.producer, two_step=200, joins=10)
        assert work.chains == 250
        async with rig.worker:
            await rig.progress.reached(150)
            at_restart = rig.progress.completed
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)
            took = await wait_all_closed(prefix, url, work.chains, timeout=120)
            # the same worker goes on: a batch started after the restart completes
            more = await start_workload(rig.producer, two_step=20, joins=2, base=50_000)
            work.extend(more)
            await wait_all_closed(prefix, url, work.chains, timeout=60)
            main = rig.worker._main
            assert main is not None and not main.done(), "the worker kept running"
    await check_exactly_once(prefix, url, work, since)
    assert len(rig.executions) == work.jobs
    assert at_restart < work.jobs - 100, "the restart happened while work was left"
    print(
        f"\n{work.chains} chains done {took:.1f}s after the restart (at {at_restart} attempts); "
        f"{rig.summary()}"
    )
