"""Resilience: the worker's connections are terminated (``pg_terminate_backend``) again and again while
it processes a thousand chains. Every chain still completes exactly once and the same worker recovers
each time, without a restart.

Only this test's own backends are terminated: its state pool, its notify connections and its
listening connection all carry a unique ``application_name``, and the kill query selects on it (other
people run tests against the same server).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

from pg_helpers import DSN, Namespace
from queuert import Attempt, Backoff, Client, Lease, Worker
from queuert.observability import AttemptFailed
from queuert_conformance.resilience import JOB_TYPES, Progress, handlers, start_workload
from queuert_postgres import PgNotifyAdapter, PgStateAdapter
from resilience_support import (
    check_exactly_once,
    install_audit,
    terminate_app_backends,
    unique_app_name,
    wait_all_closed,
    with_application_name,
)

KILL_EVERY = 120
"""Terminate the test's backends each time this many more attempts have completed."""


async def test_chains_complete_exactly_once_while_connections_are_killed(
    namespace: Namespace,
) -> None:
    app = unique_app_name("kill")
    dsn = with_application_name(DSN, app)
    state = await PgStateAdapter.connect(
        dsn, schema=namespace.schema, table_prefix=namespace.prefix, min_size=2, max_size=12
    )
    notify = PgNotifyAdapter(
        dsn,
        channel_prefix=f"qt{uuid.uuid4().hex[:12]}",
        reconnect_initial_delay=0.02,
        reconnect_max_delay=0.5,
    )
    progress = Progress()
    client: Client[Any] = Client(state, job_types=JOB_TYPES, notify=notify, observability=progress)
    # Chains are started by a separate producer whose connections are never terminated.
    channels = notify.channel_prefix
    producer_state = await PgStateAdapter.connect(
        DSN, schema=namespace.schema, table_prefix=namespace.prefix, max_size=2
    )
    producer_notify = PgNotifyAdapter(DSN, channel_prefix=channels)
    producer: Client[Any] = Client(producer_state, job_types=JOB_TYPES, notify=producer_notify)
    executions: Counter[str] = Counter()

    def record(attempt: Attempt[Any]) -> None:
        executions[attempt.job.id] += 1

    worker: Worker[Any] = Worker(
        client,
        concurrency=10,
        handlers=handlers(record),
        poll_interval=1.0,
        lease=Lease(duration=2.0, renew_every=0.5),
        reap_interval=0.25,
        backoff=Backoff(initial=0.02, maximum=0.2, jitter=0.1),
        recovery_backoff=Backoff(initial=0.02, maximum=0.3, jitter=0.1),
        shutdown_timeout=5,
    )
    try:
        await state.migrate()
        await install_audit(DSN, namespace.schema, namespace.prefix)
        work = await start_workload(producer, two_step=800, joins=40)
        assert work.chains == 1000
        kills: list[int] = []
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with worker:
            # Kill each time another KILL_EVERY attempts completed, for as long as there is work.
            for threshold in range(KILL_EVERY, work.jobs - KILL_EVERY // 2, KILL_EVERY):
                await progress.reached(threshold)
                kills.append(await terminate_app_backends(DSN, app))
            await wait_all_closed(DSN, namespace.schema, namespace.prefix, work.chains, timeout=90)
            took = loop.time() - began
            # The same worker goes on after one more kill: a new batch completes.
            kills.append(await terminate_app_backends(DSN, app))
            more = await start_workload(producer, two_step=20, joins=2, base=50_000)
            work.extend(more)
            await wait_all_closed(DSN, namespace.schema, namespace.prefix, work.chains, timeout=30)
            assert worker._main is not None and not worker._main.done(), "the worker kept running"
        await check_exactly_once(DSN, namespace.schema, namespace.prefix, work)
        assert len(executions) == work.jobs
        assert sum(kills) >= len(kills), f"every kill terminated backends: {kills}"
        assert len(kills) >= 12, "the run was interrupted many times"
        felt = (
            progress.count("worker_error")
            + progress.count("state_adapter_error")
            + progress.count("job_attempt_failed")
        )
        assert felt > 0, "the kills reached the worker"
        assert notify.reconnects >= 1, "the listening connection was re-established"
        print(
            f"\n{work.chains} chains, {work.jobs} jobs in {took:.1f}s with {len(kills)} kills "
            f"({sum(kills)} backends); re-run attempts: {sum(executions.values()) - work.jobs}; "
            f"worker errors {progress.count('worker_error')}, state errors "
            f"{progress.count('state_adapter_error')}, failed attempts "
            f"{progress.count('job_attempt_failed')}, reaped {progress.count('job_reaped')}, "
            f"listener reconnects {notify.reconnects}"
        )
        failures = Counter(getattr(e, "error_type", "") for e in progress.of(AttemptFailed))
        print(f"failed attempts by error: {dict(failures)}")
    finally:
        await worker.close()
        for closing in (client, producer, notify, producer_notify, state, producer_state):
            await closing.close()
