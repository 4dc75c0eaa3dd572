"""The transaction contract seen from the client: rollback means the job never existed; side effects
only after commit; bad input is refused with a typed error and nothing written."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from queuert import (
    Attempt,
    DuplicateJobIdError,
    EntryJobType,
    InvalidJobIdError,
    JobTypeValidationError,
    NoopNotifyAdapter,
    NotJsonError,
    TransactionHooksRequiredError,
    UnknownJobTypeError,
    UsageError,
)
from queuert.observability import ChainCreated, ChainDeduplicated, JobCreated
from queuert.schedule import Deduplication

from queuert_conformance.applicability import require_capability
from queuert_conformance.behaviour_suite.jobs import ALL, Double, Echo, Num
from queuert_conformance.behaviour_suite.support import MakeEnv, eventually


@dataclass
class Loose:
    payload: object


class Anything(EntryJobType[Loose, Loose], name="b_anything"):
    pass


class NotRegistered(EntryJobType[Num, Num], name="b_not_registered"):
    pass


class TestClientTransactions:
    async def test_a_rolled_back_start_never_existed_and_announced_nothing(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        woken: list[str] = []
        unsubscribe = await env.notify.listen_job_scheduled(["b_echo"], woken.append)
        chain_id = None
        with pytest.raises(RuntimeError):
            async with env.client.transaction() as tx:
                chain = await env.client.start_chain(Echo(Num(1)), tx=tx)
                chain_id = chain.id
                assert await env.state.get_job(chain.id, tx=tx) is not None
                raise RuntimeError("business write failed")
        await unsubscribe()
        assert chain_id is not None
        assert await env.client.get_chain(chain_id) is None
        assert env.events.events == []
        await env.client.close()
        assert woken == []

    async def test_jobs_created_blocked_wake_nobody_until_unblocked(
        self, queuert_env: MakeEnv
    ) -> None:
        from queuert_conformance.behaviour_suite.jobs import Join, Leaf, Text

        env = await queuert_env(job_types=ALL)
        woken: list[str] = []
        unsubscribe = await env.notify.listen_job_scheduled(["b_join", "b_leaf"], woken.append)
        barriers: list[str] = []
        barrier_type = f"barrier-{uuid.uuid4().hex[:12]}"
        stop_barrier = await env.notify.listen_job_scheduled([barrier_type], barriers.append)
        delivers = not isinstance(env.notify, NoopNotifyAdapter)

        async def everything_published_arrived() -> None:
            # wait_published() means sent, not received (LISTEN/NOTIFY, Redis and NATS deliver over
            # another connection): a barrier sent after it by the same adapter arrives after it.
            await env.client.wait_published()
            if delivers:
                before = len(barriers)
                await env.notify.notify_job_scheduled(barrier_type)
                await eventually(lambda: len(barriers) > before, what="the barrier notification")

        async with env.client.transaction() as tx:
            leaf = await env.client.start_chain(Leaf(Num(1)), tx=tx)
            await env.client.start_chain(Join(Text("j"), blockers=(leaf,)), tx=tx)
        await everything_published_arrived()
        assert woken == (["b_leaf"] if delivers else []), "the blocked job announced nothing"
        async with env.client.transaction() as tx:
            await env.client.complete_chain(leaf, Leaf, Num(1), tx=tx)
        await everything_published_arrived()
        await unsubscribe()
        await stop_barrier()
        assert woken == (["b_leaf", "b_join"] if delivers else []), "unblocking announces it"

    async def test_events_are_emitted_only_after_commit(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        async with env.client.transaction() as tx:
            await env.client.start_chain(Echo(Num(1)), tx=tx)
            assert env.events.events == [], "nothing is emitted while the transaction is open"
        assert [type(e) for e in env.events.events] == [ChainCreated, JobCreated]

    async def test_a_savepoint_rolls_back_its_share_only(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        require_capability(env.capabilities, "savepoints")
        async with env.client.transaction() as tx:
            kept = await env.client.start_chain(Echo(Num(1)), tx=tx)
            with pytest.raises(RuntimeError):
                async with env.client.savepoint(tx) as inner:
                    dropped = await env.client.start_chain(Echo(Num(2)), tx=inner)
                    raise RuntimeError("undo this one")
        assert await env.client.get_chain(kept.id) is not None
        assert await env.client.get_chain(dropped.id) is None
        assert [e.chain_id for e in env.events.of(ChainCreated)] == [kept.id]

    async def test_hooks_are_required_and_can_wrap_your_own_transaction(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=ALL)
        async with env.state.transaction() as tx:
            with pytest.raises(TransactionHooksRequiredError):
                await env.client.start_chain(Echo(Num(1)), tx=tx)
        async with env.client.hooks() as hooks:
            with pytest.raises(UsageError):  # hooks without their transaction
                await env.client.start_chain(Echo(Num(1)), hooks=hooks)
        async with env.client.hooks() as hooks:
            async with env.state.transaction() as tx:
                chain = await env.client.start_chain(Echo(Num(1)), tx=tx, hooks=hooks)
            assert env.events.events == []
        assert env.events.of(ChainCreated)[0].chain_id == chain.id


class TestStartsWithoutATransaction:
    """``start_chain`` without ``tx``: the start commits on its own (one statement where the backend
    allows), with the guarantees and the after-commit effects of a start in a transaction."""

    async def test_the_start_commits_then_announces(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        woken: list[str] = []
        unsubscribe = await env.notify.listen_job_scheduled(["b_echo"], woken.append)
        chain = await env.client.start_chain(Echo(Num(1)))
        assert [type(e) for e in env.events.events] == [ChainCreated, JobCreated]
        assert env.events.of(ChainCreated)[0].chain_id == chain.id
        assert await env.client.get_chain(chain.id) is not None
        chains = await env.client.start_chains([Echo(Num(2)), Echo(Num(3))])
        assert len(env.events.of(ChainCreated)) == 3
        await env.client.wait_published()
        if not isinstance(env.notify, NoopNotifyAdapter):
            await eventually(lambda: "b_echo" in woken, what="the job-scheduled notification")
        await unsubscribe()

        async def handle(attempt: Attempt[Echo]) -> Num:
            return Num(attempt.input.value)

        async with env.worker({Echo: handle}):
            for started in (chain, *chains):
                assert (await env.wait(started)).value == started.input.value

    async def test_a_failed_batch_writes_and_announces_nothing(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        taken = await env.start_one(Echo(Num(0)))
        before = len(env.events.events)
        with pytest.raises(DuplicateJobIdError):
            await env.client.start_chains([Echo(Num(1)), Echo(Num(2), id=taken.id)])
        assert [c.id for c in (await env.client.list_chains()).items] == [taken.id]
        assert len(env.events.events) == before
        with pytest.raises(UsageError):  # hooks without their transaction
            async with env.client.hooks() as hooks:
                await env.client.start_chain(Echo(Num(1)), hooks=hooks)

    async def test_deduplication_and_blockers_hold(self, queuert_env: MakeEnv) -> None:
        from queuert_conformance.behaviour_suite.jobs import Join, Leaf, Text

        env = await queuert_env(job_types=ALL)
        key = f"k-{uuid.uuid4().hex[:8]}"
        first = await env.client.start_chain(Echo(Num(1), deduplication=Deduplication(key)))
        again = await env.client.start_chain(Echo(Num(2), deduplication=Deduplication(key)))
        assert again.deduplicated and again.id == first.id
        assert len(env.events.of(ChainDeduplicated)) == 1
        leaf = await env.client.start_chain(Leaf(Num(1)))
        join = await env.client.start_chain(Join(Text("j"), blockers=(leaf,)))
        assert (await env.client.get_job(join.id)).status == "blocked"  # type: ignore[union-attr]
        async with env.client.transaction() as tx:
            await env.client.complete_chain(leaf, Leaf, Num(1), tx=tx)
        assert (await env.client.get_job(join.id)).status == "ready"  # type: ignore[union-attr]


class TestValidation:
    async def test_bad_input_is_refused_with_a_typed_error_and_nothing_written(
        self, queuert_env: MakeEnv
    ) -> None:
        env = await queuert_env(job_types=[*ALL, Anything])
        taken = await env.start_one(Echo(Num(0)))
        async with env.client.transaction() as tx:
            with pytest.raises(NotJsonError) as not_json:
                await env.client.start_chain(Anything(Loose(datetime.now(timezone.utc))), tx=tx)
            assert not_json.value.path == "$.payload"
            with pytest.raises(NotJsonError):
                await env.client.start_chain(Anything(Loose(float("nan"))), tx=tx)
            with pytest.raises(JobTypeValidationError) as wrong:
                await env.client.start_chain(Echo(Loose(1)), tx=tx)  # type: ignore[arg-type]
            assert wrong.value.code == "invalid_input"
            with pytest.raises(JobTypeValidationError) as not_entry:
                await env.client.start_chain(Double(Num(1)), tx=tx)  # type: ignore[type-var]
            assert not_entry.value.code == "not_entry_point"
            with pytest.raises(UnknownJobTypeError):
                await env.client.start_chain(NotRegistered(Num(1)), tx=tx)
            with pytest.raises(InvalidJobIdError):
                await env.client.start_chain(Echo(Num(1), id=env.malformed_id()), tx=tx)
        with pytest.raises(DuplicateJobIdError):
            async with env.client.transaction() as tx:
                await env.client.start_chain(Echo(Num(1), id=taken.id), tx=tx)
        assert [c.id for c in (await env.client.list_chains()).items] == [taken.id]

    async def test_caller_ids_are_used(self, queuert_env: MakeEnv) -> None:
        env = await queuert_env(job_types=ALL)
        wanted = env.state.ids.generate()
        chain = await env.start_one(Echo(Num(0), id=wanted))
        assert chain.id == wanted
