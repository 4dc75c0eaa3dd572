"""Shared fixtures and helpers of the behaviour suites."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from queuert import (
    Backoff,
    Chain,
    Client,
    JobType,
    Lease,
    NoopNotifyAdapter,
    NotifyAdapter,
    RecordingObservability,
    StateAdapter,
    Worker,
)
from queuert.errors import WaitChainTimeoutError
from queuert.state import Capabilities

from queuert_conformance.behaviour_suite.diagnosis import explain_unclosed_chain
from queuert_conformance.harness import StateHarness

FAST_BACKOFF = Backoff(initial=0.05, multiplier=2.0, maximum=0.2, jitter=0.0)
FAST_LEASE = Lease(duration=2.0, renew_every=0.5)


@dataclass
class Env:
    """One store (and notify adapter) with a client; builds workers that are closed at teardown."""

    harness: StateHarness
    notify: NotifyAdapter
    client: Client[Any]
    events: RecordingObservability
    _workers: list[Worker[Any]] = field(default_factory=list)
    _clients: list[Client[Any]] = field(default_factory=list)

    @property
    def state(self) -> StateAdapter[Any]:
        return self.harness.adapter

    @property
    def capabilities(self) -> Capabilities:
        return self.harness.adapter.capabilities

    def unknown_id(self) -> str:
        """An id that no chain or job has: a new one from the adapter's id policy, so the client
        accepts it and the store finds nothing."""
        return self.state.ids.generate()

    def malformed_ids(self) -> list[Any]:
        """Values the adapter's id policy refuses (and non-strings, which no policy accepts)."""
        policy = self.state.ids
        candidates = ["not an id", "", " ", "x" * 300, str(uuid.uuid4()).upper(), "{0}", "42", 42]
        bad = [v for v in candidates if not isinstance(v, str) or not policy.is_valid(v)]
        assert len(bad) >= 4, f"the {policy.name!r} policy accepts nearly everything"
        return bad

    def malformed_id(self) -> str:
        """A non-empty string the adapter's id policy refuses."""
        return next(v for v in self.malformed_ids() if isinstance(v, str) and v)

    def worker(
        self,
        handlers: dict[type[JobType[Any, Any]], Callable[[Any], Awaitable[object]]] | None = None,
        *,
        client: Client[Any] | None = None,
        **options: Any,
    ) -> Worker[Any]:
        options.setdefault("poll_interval", 0.1)
        options.setdefault("backoff", FAST_BACKOFF)
        options.setdefault("lease", FAST_LEASE)
        options.setdefault("recovery_backoff", Backoff(initial=0.05, maximum=0.2, jitter=0.0))
        options.setdefault("shutdown_timeout", 2.0)
        worker: Worker[Any] = Worker(client or self.client, handlers=handlers, **options)
        self._workers.append(worker)
        return worker

    def another_client(
        self, *, state: StateAdapter[Any] | None = None, **options: Any
    ) -> Client[Any]:
        client: Client[Any] = Client(
            state or self.state,
            job_types=list(self.client.registry._by_name.values()),
            notify=options.pop("notify", self.notify),
            observability=options.pop("observability", self.events),
            **options,
        )
        self._clients.append(client)
        return client

    async def start(self, *jobs: Any) -> list[Chain[Any]]:
        """Start one chain per job, all in one transaction."""
        async with self.client.transaction() as tx:
            return await self.client.start_chains(list(jobs), tx=tx)

    async def start_one(self, job: Any) -> Chain[Any]:
        (chain,) = await self.start(job)
        return chain

    async def wait(
        self,
        chain: Chain[Any],
        timeout: float = 10.0,
        *,
        what: str = "waiting for a chain's result",
    ) -> Any:
        """The chain's result; fails naming what broke if it does not close within ``timeout``."""
        try:
            return await self.client.wait_for_chain(chain, timeout=timeout, poll_interval=0.05)
        except WaitChainTimeoutError:
            pass
        raise AssertionError(await self.explain(chain.id, what, timeout))

    async def wait_closed(
        self, chain: Chain[Any] | str, timeout: float = 10.0, *, what: str = "waiting for a chain"
    ) -> Chain[Any]:
        """Poll until the chain is closed (any outcome) and return it."""
        chain_id = chain if isinstance(chain, str) else chain.id

        async def closed() -> Chain[Any]:
            while True:
                current = await self.client.get_chain(chain_id)
                assert current is not None, f"chain {chain_id} disappeared"
                if current.is_closed:
                    return current
                await asyncio.sleep(0.02)

        try:
            return await asyncio.wait_for(closed(), timeout)
        except asyncio.TimeoutError:
            pass
        raise AssertionError(await self.explain(chain_id, what, timeout))

    async def explain(self, chain_id: str, what: str, timeout: float) -> str:
        """Why the chain did not close: the broken property, and its jobs as stored."""
        return await explain_unclosed_chain(self.state, self.events, chain_id, what, timeout)

    async def close(self) -> None:
        for worker in self._workers:
            await worker.close()
        for client in [*self._clients, self.client]:
            await client.close()


MakeEnv = Callable[..., Awaitable[Env]]


async def handler_entered(entered: asyncio.Event, timeout: float = 5.0) -> None:
    """Wait until a handler set ``entered``; fail naming the property if no worker ever ran it."""
    try:
        await asyncio.wait_for(entered.wait(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(
            f"no handler started within {timeout:g}s: no worker claimed the ready job "
            "(claim_jobs did not return it) or none ran it"
        ) from None


async def eventually(
    predicate: Callable[[], Awaitable[bool] | bool],
    *,
    timeout: float = 10.0,
    what: str = "condition",
) -> None:
    """Wait until ``predicate()`` is true (checked every 20 ms), failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def reason_a_running_handler_is_told(
    env: Env, action: Callable[[Chain[Any], Any], Awaitable[Any]]
) -> str | None:
    """Start a chain whose handler runs (staged) until it is cancelled, call ``action(chain, tx)`` in
    a client transaction, and return the reason the handler's signal gave.

    When the notify adapter delivers, the lease is renewed only every 30 s, so the handler can only
    learn in time from the ownership-lost notification; without notifications the next lease renewal
    tells it.
    """
    from queuert_conformance.behaviour_suite.jobs import Echo, Num

    entered = asyncio.Event()
    reasons: list[str | None] = []

    async def handle(attempt: Any) -> None:
        await attempt.prepare("staged")
        entered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            reasons.append(attempt.signal.reason)
            raise

    delivers = not isinstance(env.notify, NoopNotifyAdapter)
    lease = Lease(duration=60, renew_every=30) if delivers else FAST_LEASE
    chain = await env.start_one(Echo(Num(0)))
    async with env.worker({Echo: handle}, lease=lease):
        await handler_entered(entered)
        async with env.client.transaction() as tx:
            await action(chain, tx)
        await eventually(lambda: bool(reasons), timeout=5, what="the running handler to be told")
    assert len(reasons) == 1
    return reasons[0]


def stall_lease_renewal(worker: Worker[Any]) -> Callable[[], None]:
    """Stop the worker's lease renewal, as a stalled process would; call the result to resume it."""
    assert worker._renewer is not None
    worker._renewer.cancel()

    def resume() -> None:
        worker._renewer = asyncio.ensure_future(worker._renew_loop())
        worker._tasks.add(worker._renewer)
        worker._renewer.add_done_callback(worker._tasks.discard)

    return resume


@pytest_asyncio.fixture
async def queuert_env(
    queuert_state_harness: StateHarness,
    queuert_notify_factory: Callable[[], Awaitable[NotifyAdapter]],
) -> AsyncIterator[MakeEnv]:
    """``await queuert_env(job_types=[...])`` builds an :class:`Env` on the adapter under test."""
    envs: list[Env] = []

    async def make(job_types: Sequence[type[JobType[Any, Any]]], **client_options: Any) -> Env:
        notify = await queuert_notify_factory()
        events = RecordingObservability()
        client: Client[Any] = Client(
            queuert_state_harness.adapter,
            job_types=job_types,
            notify=notify,
            observability=client_options.pop("observability", events),
            **client_options,
        )
        env = Env(queuert_state_harness, notify, client, events)
        envs.append(env)
        return env

    yield make
    for env in envs:
        await env.close()
