"""Property: under random creations, claims, completions, failures, cancellations, retries, lease
losses and reaps, the running jobs of a type never exceed its limit, nor those of a (type, key)
its key limit; and every claim takes what the rule (:func:`queuert.limits.take_within_limits`)
takes from the ready jobs as stored, or says there is more.

The state machine runs in a worker thread and submits every adapter call to the test's loop, as the
model test does. Each example works under job type names of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections import Counter
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from queuert.limits import ConcurrencyLimit, take_within_limits
from queuert.state import JobFilter, NewJob, StateAdapter, StoredJob

from queuert_conformance.applicability import require_capability
from queuert_conformance.harness import StateHarness

__all__ = ["TestLimitsProperty"]

T = TypeVar("T")

EXAMPLES = int(os.environ.get("QUEUERT_CONFORMANCE_LIMITS_EXAMPLES", "25"))
STEPS = int(os.environ.get("QUEUERT_CONFORMANCE_LIMITS_STEPS", "30"))
STEP_TIMEOUT = 60.0
LONG = timedelta(hours=1)
EXPIRED = timedelta(0)
KEYS = ("k1", "k2", "k3")
WORKERS = ("w1", "w2")
BOUNDS = (
    ConcurrencyLimit(limit=3),
    ConcurrencyLimit(key_limit=1),
    ConcurrencyLimit(limit=2, key_limit=1),
)


class LimitsMachine(RuleBasedStateMachine):
    def __init__(self, adapter: StateAdapter[Any], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.adapter = adapter
        self.loop = loop
        prefix = f"limits-{uuid.uuid4().hex[:10]}"
        self.types = [f"{prefix}.{i}" for i in range(len(BOUNDS))]
        self.limits = dict(zip(self.types, BOUNDS, strict=True))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(STEP_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise AssertionError(f"an adapter call hung for {STEP_TIMEOUT:g}s") from None

    def jobs(self) -> list[StoredJob]:
        async def read() -> list[StoredJob]:
            out: list[StoredJob] = []
            cursor = None
            while True:
                page = await self.adapter.list_jobs(
                    JobFilter(type_names=self.types), order="asc", cursor=cursor, limit=500
                )
                out.extend(page.items)
                if page.next_cursor is None:
                    return out
                cursor = page.next_cursor

        return self.run(read())

    def running(self) -> list[StoredJob]:
        return [j for j in self.jobs() if j.status == "running"]

    @rule(
        which=st.integers(0, len(BOUNDS) - 1),
        keys=st.lists(st.sampled_from((*KEYS, None)), min_size=1, max_size=4),
        priority=st.integers(-1, 1),
    )
    def create(self, which: int, keys: list[str | None], priority: int) -> None:
        type_name = self.types[which]
        jobs = [
            NewJob(
                id=self.adapter.ids.generate(),
                type_name=type_name,
                chain_type_name=type_name,
                input=None,
                priority=priority,
                limit_key=key,
            )
            for key in keys
        ]
        self.run(self.adapter.create_jobs(jobs))

    @rule(
        worker=st.sampled_from(WORKERS),
        expire=st.booleans(),
        limit=st.integers(1, 4),
        which=st.sets(st.integers(0, len(BOUNDS) - 1), min_size=1),
    )
    def claim(self, worker: str, expire: bool, limit: int, which: set[int]) -> None:
        types = [self.types[i] for i in sorted(which)]
        before = self.jobs()
        ready = sorted(
            (j for j in before if j.status == "ready" and j.type_name in types),
            key=lambda j: (-j.priority, j.scheduled_at, j.id),
        )
        running = [j for j in before if j.status == "running"]
        expected, _ = take_within_limits(
            ((j.type_name, j.limit_key, j) for j in ready),
            limits=self.limits,
            running_types=Counter(j.type_name for j in running),
            running_keys=Counter(
                (j.type_name, j.limit_key) for j in running if j.limit_key is not None
            ),
            want=limit,
        )
        result = self.run(
            self.adapter.claim_jobs(
                leases=dict.fromkeys(types, EXPIRED if expire else LONG),
                limit=limit,
                worker_id=worker,
                limits={t: self.limits[t] for t in types},
            )
        )
        got = [j.id for j in result.jobs]
        assert set(got) <= {j.id for j in ready}, "claimed a job that was not ready"
        if len(got) < len(expected):
            assert result.has_more, (
                f"claimed {len(got)} of the {len(expected)} jobs the limits allow, without has_more"
            )
        if not result.has_more:
            assert got == [j.id for j in expected], "took other jobs than the rule"

    def _pick_running(self, data: st.DataObject) -> StoredJob | None:
        running = self.running()
        if not running:
            return None
        return data.draw(st.sampled_from(running))

    @rule(data=st.data(), how=st.sampled_from(["completed", "failed", "cancelled"]))
    def close(self, data: st.DataObject, how: str) -> None:
        job = self._pick_running(data)
        if job is None:
            return
        self.run(
            self.adapter.complete_job(
                job.id,
                outcome=how,  # type: ignore[arg-type]
                worker_id=job.leased_by,
                error="boom" if how == "failed" else None,
            )
        )

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        job = self._pick_running(data)
        if job is not None:
            self.run(self.adapter.reschedule_job(job.id, schedule=None, error="retry"))

    @rule()
    def reap(self) -> None:
        self.run(self.adapter.reap_expired_leases(self.types, limit=100))

    @invariant()
    def running_jobs_stay_within_their_limits(self) -> None:
        running = self.running()
        per_type = Counter(j.type_name for j in running)
        per_key = Counter((j.type_name, j.limit_key) for j in running if j.limit_key is not None)
        for type_name, bound in self.limits.items():
            if bound.limit is not None:
                assert per_type[type_name] <= bound.limit, f"{type_name}: {per_type[type_name]}"
        for (type_name, key), n in per_key.items():
            bound = self.limits[type_name]
            if bound.key_limit is not None:
                assert n <= bound.key_limit, f"{type_name} key {key}: {n} running"


class TestLimitsProperty:
    async def test_running_jobs_never_exceed_their_limits(
        self, queuert_state_harness: StateHarness
    ) -> None:
        adapter = queuert_state_harness.adapter
        require_capability(adapter.capabilities, "concurrency_limits")
        loop = asyncio.get_running_loop()

        class Machine(LimitsMachine):
            def __init__(self) -> None:
                super().__init__(adapter, loop)

        def drive() -> None:
            run_state_machine_as_test(
                Machine,
                settings=settings(
                    max_examples=EXAMPLES,
                    stateful_step_count=STEPS,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                    phases=[p for p in Phase if p is not Phase.shrink],
                ),
            )

        await asyncio.to_thread(drive)
