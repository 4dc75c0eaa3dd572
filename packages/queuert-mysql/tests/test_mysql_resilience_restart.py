"""Resilience: the MySQL/MariaDB server shuts down and starts again while a worker processes
chains. Every chain still completes exactly once, and the same worker goes on: a batch started
after the restart completes too.

The server is a private one started for this module (``mysql_server.PrivateServer``), never the
shared one the other tests use.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mysql_helpers import unique_prefix
from mysql_resilience_support import Rig, check_exactly_once, wait_all_closed
from mysql_server import PrivateServer
from queuert_conformance.resilience import start_workload


@pytest.fixture(scope="module")
def server() -> Iterator[PrivateServer]:
    private = PrivateServer()
    private.start()
    try:
        yield private
    finally:
        private.stop()


async def test_a_server_restart_during_processing(server: PrivateServer) -> None:
    url, prefix = server.url, unique_prefix()
    async with Rig(prefix, url=url, poll_interval=0.5) as rig:
        work = await start_workload(rig.producer, two_step=400, joins=20)
        assert work.chains == 500
        async with rig.worker:
            await rig.progress.reached(300)
            at_restart = rig.progress.completed
            await server.restart()
            took = await wait_all_closed(prefix, work.chains, timeout=90, url=url)
            # the same worker goes on: a batch started after the restart completes
            more = await start_workload(rig.producer, two_step=20, joins=2, base=50_000)
            work.extend(more)
            await wait_all_closed(prefix, work.chains, timeout=60, url=url)
            main = rig.worker._main
            assert main is not None and not main.done(), "the worker kept running"
    await check_exactly_once(prefix, work, url=url)
    assert len(rig.executions) == work.jobs
    # The server went down mid-run. (Whether a statement was in flight then is up to timing: the
    # pool replaces connections that died idle without an error.)
    assert at_restart < work.jobs - 100, "the restart happened while work was left"
    print(
        f"\n{work.chains} chains done {took:.1f}s after the restart (at {at_restart} attempts); "
        f"{rig.summary()}"
    )
