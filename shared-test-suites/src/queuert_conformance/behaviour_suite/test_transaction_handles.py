"""What the client accepts as ``tx``, on every adapter: an object that is not an open transaction of
the adapter (another kind of object, or a transaction that has ended) raises ``UsageError`` before
anything is written, even inside ``client.hooks(tx)``, instead of a driver error or a write that
commits on its own."""

from __future__ import annotations

from typing import Any

import pytest
from queuert import UsageError

from queuert_conformance.behaviour_suite.jobs import ALL, Echo, Num
from queuert_conformance.behaviour_suite.support import Env, MakeEnv


async def _chains(env: Env) -> int:
    return len((await env.client.list_chains(limit=100)).items)


class TestTransactionHandles:
    @pytest.mark.parametrize("handle", [object(), "tx", 42], ids=["object", "str", "int"])
    async def test_an_object_that_is_no_transaction_is_refused(
        self, queuert_env: MakeEnv, handle: Any
    ) -> None:
        env = await queuert_env(job_types=ALL)
        with pytest.raises(UsageError):
            async with env.client.hooks(handle):
                await env.client.start_chain(Echo(Num(1)), tx=handle)
        assert await _chains(env) == 0

    async def test_a_transaction_that_has_ended_is_refused(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        async with env.client.transaction() as tx:
            await env.client.start_chain(Echo(Num(1)), tx=tx)
        with pytest.raises(UsageError):
            async with env.client.hooks(tx):
                await env.client.start_chain(Echo(Num(2)), tx=tx)
        assert await _chains(env) == 1
