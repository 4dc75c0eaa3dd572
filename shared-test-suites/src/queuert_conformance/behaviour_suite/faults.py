"""Fault injection and call counting around real adapters (no database is mocked: every call that is
not failed on purpose goes to the real adapter)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from queuert.notify import NotifyAdapter
from queuert.state import StateAdapter


class InjectedError(ConnectionError):
    """A transient failure injected by the test suite."""


class _Proxy:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CountingStateAdapter(_Proxy):
    """Delegates everything; records how many jobs each ``claim_jobs`` call returned and how many
    leases each ``renew_leases`` call renewed."""

    def __init__(self, inner: StateAdapter[Any]) -> None:
        super().__init__(inner)
        self.claimed_per_call: list[int] = []
        self.renewed_per_call: list[int] = []

    async def claim_jobs(self, **kwargs: Any) -> Any:
        result = await self._inner.claim_jobs(**kwargs)
        self.claimed_per_call.append(len(result.jobs))
        return result

    async def renew_leases(self, leases: Any, **kwargs: Any) -> Any:
        self.renewed_per_call.append(len(leases))
        return await self._inner.renew_leases(leases, **kwargs)


class FlakyStateAdapter(_Proxy):
    """Fails some calls with :class:`InjectedError` before they reach the adapter, and some commits
    after they happened (the caller then does not know its transaction committed).

    ``pattern`` (a list of booleans, True = fail) is consumed call by call when given; otherwise each
    call fails with probability ``rate`` from a seeded generator. ``fail_only`` limits the injection to
    the named operations.
    """

    OPERATIONS = (
        "create_jobs",
        "add_blockers",
        "get_job",
        "get_chain",
        "get_job_blockers",
        "next_due",
        "list_chains",
        "list_jobs",
        "list_chain_jobs",
        "list_blocked_jobs",
        "claim_jobs",
        "renew_leases",
        "complete_job",
        "reschedule_job",
        "reap_expired_leases",
        "trigger_jobs",
        "delete_chains",
    )

    def __init__(
        self,
        inner: StateAdapter[Any],
        *,
        rate: float = 0.1,
        seed: int = 7,
        pattern: Sequence[bool] | None = None,
        fail_only: Sequence[str] | None = None,
        fail_after_commit: bool = False,
    ) -> None:
        super().__init__(inner)
        self._random = random.Random(seed)
        self._rate = rate
        self._pattern = list(pattern) if pattern is not None else None
        self._only = set(fail_only) if fail_only is not None else None
        self._after_commit = fail_after_commit
        self.injected = 0
        for name in self.OPERATIONS:
            setattr(self, name, self._wrap(name))

    def _should_fail(self, name: str) -> bool:
        if self._only is not None and name not in self._only:
            return False
        if self._pattern is not None:
            return self._pattern.pop(0) if self._pattern else False
        return self._random.random() < self._rate

    def _wrap(self, name: str) -> Callable[..., Any]:
        method = getattr(self._inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self._should_fail(name):
                self.injected += 1
                raise InjectedError(f"injected failure in {name}")
            return await method(*args, **kwargs)

        return call

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        if self._should_fail("transaction"):
            self.injected += 1
            raise InjectedError("injected failure opening a transaction")
        async with self._inner.transaction() as tx:
            yield tx
        if self._after_commit and self._should_fail("commit"):
            self.injected += 1
            raise InjectedError("injected failure after the commit")


class FlakyNotifyAdapter(_Proxy):
    """Fails some notify calls (publishing, listening, hints) with :class:`InjectedError`."""

    OPERATIONS = (
        "notify_job_scheduled",
        "listen_job_scheduled",
        "provide_wake_hint",
        "consume_wake_hint",
        "notify_chain_closed",
        "listen_chain_closed",
        "notify_job_ownership_lost",
        "listen_job_ownership_lost",
    )

    def __init__(self, inner: NotifyAdapter, *, rate: float = 0.3, seed: int = 11) -> None:
        super().__init__(inner)
        self._random = random.Random(seed)
        self._rate = rate
        self.injected = 0
        for name in self.OPERATIONS:
            setattr(self, name, self._wrap(name))

    def _wrap(self, name: str) -> Callable[..., Any]:
        method = getattr(self._inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            if self._random.random() < self._rate:
                self.injected += 1
                raise InjectedError(f"injected failure in {name}")
            return await method(*args, **kwargs)

        return call
