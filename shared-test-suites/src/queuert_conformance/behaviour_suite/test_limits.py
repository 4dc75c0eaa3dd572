"""Concurrency limits through workers: a type's limit and a per-key limit hold across several
workers sharing the store, and a busy key does not hold back the others."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from queuert import Attempt, EntryJobType, UsageError
from queuert.limits import ConcurrencyLimit

from queuert_conformance.applicability import require_capability
from queuert_conformance.behaviour_suite.jobs import ALL, Capped, Num, PerCustomer
from queuert_conformance.behaviour_suite.support import MakeEnv

WORK = 0.03
"""How long each handler works: long enough for the workers' slots to overlap."""


class _Gauge:
    """Counts the handlers running at once, overall and per key."""

    def __init__(self) -> None:
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()

    async def run(self, key: str) -> None:
        for name in ("*", key):
            self.now[name] += 1
            self.peak[name] = max(self.peak[name], self.now[name])
        try:
            await asyncio.sleep(WORK)  # the handler's work
        finally:
            for name in ("*", key):
                self.now[name] -= 1


class TestWorkerLimits:
    async def test_a_type_limit_holds_across_workers(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        require_capability(env.capabilities, "concurrency_limits")
        gauge = _Gauge()

        async def capped(attempt: Attempt[Capped]) -> Num:
            await gauge.run("capped")
            return attempt.input

        chains = await env.start(*[Capped(Num(i)) for i in range(10)])
        async with (
            env.worker({Capped: capped}, concurrency=4),
            env.worker({Capped: capped}, concurrency=4),
        ):
            for chain in chains:
                await env.wait(chain)
        assert gauge.peak["*"] == 2, "eight free slots, but at most two Capped jobs at once"

    async def test_one_job_per_key_at_once_and_keys_side_by_side(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        require_capability(env.capabilities, "concurrency_limits")
        gauge = _Gauge()

        async def per_customer(attempt: Attempt[PerCustomer]) -> Num:
            await gauge.run(f"customer-{attempt.input.value % 3}")
            return attempt.input

        chains = await env.start(*[PerCustomer(Num(i)) for i in range(12)])
        assert {c.root.limit_key for c in chains} == {"customer-0", "customer-1", "customer-2"}
        async with (
            env.worker({PerCustomer: per_customer}, concurrency=4),
            env.worker({PerCustomer: per_customer}, concurrency=4),
        ):
            for chain in chains:
                await env.wait(chain)
        assert all(gauge.peak[f"customer-{i}"] == 1 for i in range(3)), gauge.peak
        assert gauge.peak["*"] >= 2, "customers are not held back by each other"

    async def test_a_limit_key_that_is_not_a_string_is_refused(self, queuert_env: MakeEnv) -> None:
        def not_a_string(value: Num) -> Any:
            return value.value

        class BadKey(EntryJobType[Num, Num], name="b_bad_key", key_limit=1, limit_key=not_a_string):
            pass

        env = await queuert_env(job_types=[*ALL, BadKey])
        with pytest.raises(UsageError, match="limit_key"):
            await env.start_one(BadKey(Num(1)))

    @pytest.mark.parametrize(
        "keywords",
        [{"limit": 0}, {"limit": True}, {"key_limit": 1}, {"limit_key": str}, {"key_limit": -1}],
    )
    def test_bad_declarations_are_refused(self, keywords: dict[str, Any]) -> None:
        with pytest.raises(UsageError):

            class Bad(EntryJobType[Num, Num], name="b_bad", **keywords):
                pass

    def test_the_declaration_is_readable(self) -> None:
        assert Capped.concurrency_limit == ConcurrencyLimit(limit=2)
        assert PerCustomer.concurrency_limit == ConcurrencyLimit(key_limit=1)
        assert PerCustomer.limit_key_of is not None
        assert PerCustomer.limit_key_of(Num(4)) == "customer-1"
