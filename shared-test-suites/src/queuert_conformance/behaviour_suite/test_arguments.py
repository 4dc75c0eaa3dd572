"""Arguments the client checks before the store is touched, on every adapter.

A malformed id (per the adapter's id policy) in any call raises ``InvalidJobIdError``; an unknown
filter value, order, limit or cursor raises ``UsageError``; in both cases the state adapter is not
called at all. ``delete_chains`` returns the deleted chains oldest first, whatever order the adapter
found them in.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, cast

import pytest
from queuert import (
    Attempt,
    Chain,
    Client,
    Deduplication,
    InvalidJobIdError,
    StateAdapter,
    UsageError,
)
from queuert.ids import IdPolicy

from queuert_conformance.behaviour_suite.jobs import (
    ALL,
    Describe,
    Double,
    Echo,
    Join,
    Leaf,
    Num,
    Start,
    Text,
)
from queuert_conformance.behaviour_suite.support import Env, MakeEnv


class Spy:
    """The state adapter under test, recording every operation the client calls on it (and, when
    given, declaring another id policy)."""

    def __init__(self, inner: StateAdapter[Any], ids: IdPolicy | None = None) -> None:
        self._inner = inner
        self.calls: list[str] = []
        if ids is not None:
            self.ids = ids

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(value):
            return value

        async def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return await value(*args, **kwargs)

        return recorded


async def spied(env: Env, ids: IdPolicy | None = None) -> tuple[Client[Any], Spy]:
    spy = Spy(env.state, ids)
    return env.another_client(state=cast(StateAdapter[Any], spy)), spy


Call = Callable[[Client[Any], Any, str, Any], Awaitable[Any]]
"""``call(client, bad_id, good_id, tx)``."""

ID_CALLS: dict[str, Call] = {
    "get_chain": lambda c, bad, good, tx: c.get_chain(bad),
    "get_job": lambda c, bad, good, tx: c.get_job(bad),
    "get_job_blockers": lambda c, bad, good, tx: c.get_job_blockers(bad),
    "list_chain_jobs": lambda c, bad, good, tx: c.list_chain_jobs(bad),
    "list_blocked_jobs": lambda c, bad, good, tx: c.list_blocked_jobs(bad),
    "list_chains(chain_ids)": lambda c, bad, good, tx: c.list_chains(chain_ids=[good, bad]),
    "list_chains(job_ids)": lambda c, bad, good, tx: c.list_chains(job_ids=[bad]),
    "list_jobs(job_ids)": lambda c, bad, good, tx: c.list_jobs(job_ids=[good, bad]),
    "list_jobs(chain_ids)": lambda c, bad, good, tx: c.list_jobs(chain_ids=[bad]),
    "wait_for_chain": lambda c, bad, good, tx: c.wait_for_chain(bad, Echo, timeout=5),
    "complete_chain": lambda c, bad, good, tx: c.complete_chain(bad, Echo, Num(1), tx=tx),
    "cancel_chain": lambda c, bad, good, tx: c.cancel_chain(bad, tx=tx),
    "delete_chains": lambda c, bad, good, tx: c.delete_chains([good, bad], tx=tx),
    "trigger_jobs": lambda c, bad, good, tx: c.trigger_jobs([good, bad], tx=tx),
    "start_chain(id)": lambda c, bad, good, tx: c.start_chain(Echo(Num(1), id=bad), tx=tx),
    "start_chains(id)": lambda c, bad, good, tx: c.start_chains(
        [Echo(Num(1)), Echo(Num(2), id=bad)], tx=tx
    ),
    "start_chain(exclude_chain_ids)": lambda c, bad, good, tx: c.start_chain(
        Echo(Num(1), deduplication=Deduplication("k", exclude_chain_ids=[good, bad])), tx=tx
    ),
}


class TestArguments:
    async def test_the_client_makes_and_checks_ids_with_the_adapters_policy(
        self, queuert_env: MakeEnv
    ) -> None:
        """New ids come from the adapter's policy, and a caller's id is checked with it (here a
        narrower policy than the store's own refuses one id the store would take)."""
        env = await queuert_env(job_types=ALL)
        store = env.state.ids
        made: list[str] = []
        refused = store.generate()

        def generate() -> str:
            made.append(store.generate())
            return made[-1]

        narrow = IdPolicy(
            name="narrow",
            generate=generate,
            is_valid=lambda value: value != refused and store.is_valid(value),
            describe="an id of the store, but not the refused one",
        )
        client, spy = await spied(env, narrow)
        async with client.transaction() as tx:
            chain = await client.start_chain(Echo(Num(0)), tx=tx)
            before = list(spy.calls)
            with pytest.raises(InvalidJobIdError) as info:
                await client.start_chain(Echo(Num(1), id=refused), tx=tx)
            assert spy.calls == before, "the refused start reached the store"
        assert made == [chain.id], "the client made the new chain's id with the policy"
        assert info.value.job_id == refused and info.value.expected == narrow.describe
        assert await client.get_chain(store.generate()) is None, "a valid unknown id is not found"
        with pytest.raises(InvalidJobIdError):
            await client.get_job(refused)

        async def start(attempt: Attempt[Start]) -> Double:
            return Double(Num(attempt.input.value))

        async def double(attempt: Attempt[Double]) -> Num:
            return Num(attempt.input.value * 2)

        async def describe(attempt: Attempt[Describe]) -> Text:
            return Text(str(attempt.input.value))

        started = await client_start(client, Start(Num(4)))
        async with env.worker({Start: start, Double: double, Describe: describe}, client=client):
            assert (await client.wait_for_chain(started, timeout=10, poll_interval=0.05)).value == 8
        jobs = (await client.list_chain_jobs(started.id)).items
        assert [j.id for j in jobs] == made[1:3], "the worker's continuation got a policy id too"

    @pytest.mark.parametrize("call", list(ID_CALLS))
    async def test_a_malformed_id_is_refused_before_the_store_is_touched(
        self, queuert_env: MakeEnv, call: str
    ) -> None:
        env = await queuert_env(job_types=ALL)
        kept = await env.start_one(Echo(Num(0)))
        client, spy = await spied(env)
        good = env.state.ids.generate()
        for bad in env.malformed_ids():
            async with client.transaction() as tx:
                with pytest.raises(InvalidJobIdError) as info:
                    await ID_CALLS[call](client, bad, good, tx)
            assert info.value.job_id == bad, f"{call} named {info.value.job_id!r}, not {bad!r}"
            assert spy.calls == [], f"{call} with id {bad!r} reached the store: {spy.calls}"
        assert [c.id for c in (await env.client.list_chains()).items] == [kept.id], (
            "nothing was written"
        )

    async def test_unknown_filter_and_page_values_are_refused_before_the_store_is_touched(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        chain = await env.start_one(Echo(Num(0)))
        await env.start_one(Echo(Num(1)))
        jobs_cursor = (await env.client.list_jobs(limit=1)).next_cursor
        chains_cursor = (await env.client.list_chains(limit=1)).next_cursor
        assert jobs_cursor is not None and chains_cursor is not None
        client, spy = await spied(env)
        lists: dict[str, Callable[..., Awaitable[Any]]] = {
            "list_chains": client.list_chains,
            "list_jobs": client.list_jobs,
            "list_chain_jobs": lambda **kw: client.list_chain_jobs(chain.id, **kw),
            "list_blocked_jobs": lambda **kw: client.list_blocked_jobs(chain.id, **kw),
        }
        bad_pages: list[dict[str, Any]] = [
            {"order": "up"},
            {"order": "DESC"},
            {"limit": 0},
            {"limit": -5},
            {"limit": 1001},
            {"limit": True},
            {"limit": "5"},
            {"limit": 2.0},
            {"cursor": "not a cursor!"},
            {"cursor": "eyJrIjoieiJ9"},
        ]
        for name, list_call in lists.items():
            for kwargs in bad_pages:
                with pytest.raises(UsageError):
                    await list_call(**kwargs)
                assert spy.calls == [], f"{name}(**{kwargs}) reached the store: {spy.calls}"
        foreign: dict[str, str] = {
            "list_chains": jobs_cursor,
            "list_jobs": chains_cursor,
            "list_chain_jobs": jobs_cursor,
            "list_blocked_jobs": chains_cursor,
        }
        for name, cursor in foreign.items():
            with pytest.raises(UsageError):
                await lists[name](cursor=cursor)
            assert spy.calls == [], f"{name} took a cursor of another list"
        bad_filters: list[tuple[Callable[..., Awaitable[Any]], dict[str, Any]]] = [
            (client.list_jobs, {"statuses": ["bogus"]}),
            (client.list_jobs, {"statuses": ["ready", "Running"]}),
            (client.list_jobs, {"statuses": "ready"}),
            (client.list_jobs, {"type_names": "b_echo"}),
            (client.list_jobs, {"chain_type_names": [1]}),
            (client.list_jobs, {"created_from": datetime(2030, 1, 1)}),
            (client.list_chains, {"status": "bogus"}),
            (client.list_chains, {"status": "ready"}),
            (client.list_chains, {"type_names": "b_echo"}),
            (client.list_chains, {"created_to": datetime(2030, 1, 1)}),
        ]
        for list_call, kwargs in bad_filters:
            with pytest.raises(UsageError):
                await list_call(**kwargs)
            assert spy.calls == [], f"filter {kwargs} reached the store: {spy.calls}"

    async def test_deleted_chains_come_back_oldest_first(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        a = await env.start_one(Echo(Num(1)))
        b = await env.start_one(Echo(Num(2)))
        c = await env.start_one(Echo(Num(3)))
        async with env.client.transaction() as tx:
            deleted = await env.client.delete_chains([c, a.id, b, c], tx=tx)
        assert [d.id for d in deleted] == oldest_first([a, b, c])
        leaf_one = await env.start_one(Leaf(Num(1)))
        leaf_two = await env.start_one(Leaf(Num(2)))
        join = await env.start_one(Join(Text("j"), blockers=(leaf_two, leaf_one)))
        async with env.client.transaction() as tx:
            deleted = await env.client.delete_chains([join], cascade=True, tx=tx)
        assert [d.id for d in deleted] == oldest_first([leaf_one, leaf_two, join]), (
            "chains reached by the cascade are ordered with the others"
        )


async def client_start(client: Client[Any], job: Any) -> Chain[Any]:
    async with client.transaction() as tx:
        return await client.start_chain(job, tx=tx)


def oldest_first(chains: list[Chain[Any]]) -> list[str]:
    return [c.id for c in sorted(chains, key=lambda c: (c.root.created_at, c.id))]
