"""Property: ``next_due`` of a type is the time until its earliest due job, whatever the priorities
and due times of its jobs. A store that keeps ready jobs in priority order first (as a claim reads
them) must still find the earliest one, in whichever priority it is.

Hypothesis runs the examples in a worker thread and submits every adapter call to the test's loop,
as the model test does. Each example works under a job type name of its own.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from queuert.schedule import Schedule
from queuert.state import NewJob

from queuert_conformance.harness import StateHarness

__all__ = ["TestNextDueProperty"]

EXAMPLES = int(os.environ.get("QUEUERT_CONFORMANCE_NEXT_DUE_EXAMPLES", "25"))
STEP_TIMEOUT = 60.0
SLACK = timedelta(seconds=20)
"""Due times differ by whole minutes; this covers the time between the test's clock and the
store's."""

JOBS = st.lists(
    st.tuples(
        st.sampled_from([-5, 0, 0, 3, 10]),  # priority
        st.integers(min_value=0, max_value=40),  # due that many minutes after a base time
    ),
    min_size=1,
    max_size=12,
)


class TestNextDueProperty:
    async def test_earliest_due_job_across_priorities(
        self, queuert_state_harness: StateHarness
    ) -> None:
        adapter = queuert_state_harness.adapter
        loop = asyncio.get_running_loop()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(jobs=JOBS, base_minutes=st.sampled_from([-10, 60]))
        def example(jobs: list[tuple[int, int]], base_minutes: int) -> None:
            # a base in the past makes some jobs due now; one ahead, every job scheduled
            type_name = f"due-{uuid.uuid4().hex[:10]}"
            base = datetime.now(timezone.utc) + timedelta(minutes=base_minutes)

            async def check() -> None:
                await adapter.create_jobs(
                    [
                        NewJob(
                            id=adapter.ids.generate(),  # the adapter's own id policy
                            type_name=type_name,
                            chain_type_name=type_name,
                            input=None,
                            schedule=Schedule(at=base + timedelta(minutes=minutes)),
                            priority=priority,
                        )
                        for priority, minutes in jobs
                    ]
                )
                due = await adapter.next_due([type_name, f"{type_name}-other"])
                earliest = base + timedelta(minutes=min(minutes for _, minutes in jobs))
                want = max(earliest - datetime.now(timezone.utc), timedelta(0))
                assert due is not None, f"jobs {jobs} from {base}: next_due is None"
                assert want - SLACK <= due <= want + SLACK, (
                    f"jobs {jobs} from {base}: next_due is {due}, expected about {want}"
                )

            asyncio.run_coroutine_threadsafe(check(), loop).result(STEP_TIMEOUT)

        await asyncio.to_thread(example)
