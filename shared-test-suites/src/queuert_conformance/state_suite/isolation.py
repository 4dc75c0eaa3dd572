"""Read isolation: a read without ``tx`` never observes another transaction's uncommitted work.

For every kind of write (insert, update, claim, delete, blocker, continuation, closing a chain) the case
opens a transaction, makes the write, and reads everything without ``tx`` while the transaction is still
open: ``get_job``, ``get_chain``, ``get_job_blockers``, ``next_due`` and the four list queries. Locked
reads without ``tx`` may wait for the writer, so they run concurrently and are checked once the writer
rolled back. Finally the same write is committed to prove the case observes what it claims to.

Non-transactional reads must not wait for an open transaction (the case reads while its own transaction
is open; a backend that made such reads wait would deadlock its callers).

``next_due`` skips rows locked by other transactions (contract), so while the writer holds row locks it
may report a *later* due time than the committed state (or none), never an earlier one: an earlier one
can only come from uncommitted work. After the writer ends it must match exactly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from queuert.schedule import Schedule
from queuert.state import ChainFilter, JobFilter, StoredChain, StoredJob

from queuert_conformance.harness import StateHarness
from queuert_conformance.state_suite._support import (
    HOUR,
    TYPE_A,
    TYPE_B,
    TYPE_C,
    TYPE_D,
    WORKER,
    Boom,
    Competitor,
    Ops,
    ids,
    within,
)

__all__ = ["TestReadIsolation"]


@dataclass
class Scene:
    """Committed starting point of an isolation case, plus ids the writes will use."""

    ready: StoredJob
    """An open, ready TYPE_A chain."""
    scheduled: StoredJob
    """A TYPE_C chain scheduled an hour ahead."""
    blocker: StoredJob
    """An open TYPE_B chain that ``dependent`` waits for."""
    dependent: StoredJob
    doomed: StoredJob
    """A TYPE_B chain to delete."""
    new_id: str
    successor_id: str

    @property
    def job_ids(self) -> list[str]:
        return [
            self.ready.id,
            self.scheduled.id,
            self.blocker.id,
            self.dependent.id,
            self.doomed.id,
            self.new_id,
            self.successor_id,
        ]

    @property
    def chain_ids(self) -> list[str]:
        return [
            self.ready.id,
            self.scheduled.id,
            self.blocker.id,
            self.dependent.id,
            self.doomed.id,
            self.new_id,
        ]


async def build_scene(ops: Ops) -> Scene:
    ready = await ops.start(TYPE_A, {"ready": True})
    scheduled = await ops.start(TYPE_C, schedule=Schedule(after=HOUR))
    blocker = await ops.start(TYPE_B)
    dependent = await ops.start_blocked(TYPE_C, [blocker.id])
    doomed = await ops.start(TYPE_B, {"doomed": True})
    return Scene(ready, scheduled, blocker, dependent, doomed, ops.new_id(), ops.new_id())


Write = Callable[[Ops, Scene, Any], Awaitable[None]]


async def insert(ops: Ops, scene: Scene, tx: Any) -> None:
    await ops.adapter.create_jobs([ops.new_job(TYPE_D, {"new": 1}, id=scene.new_id)], tx=tx)


async def update(ops: Ops, scene: Scene, tx: Any) -> None:
    await ops.adapter.trigger_jobs([scene.scheduled.id], tx=tx)


async def claim(ops: Ops, scene: Scene, tx: Any) -> None:
    result = await ops.claim(TYPE_A, tx=tx)
    assert ids(result.jobs) == [scene.ready.id]


async def delete(ops: Ops, scene: Scene, tx: Any) -> None:
    result = await ops.adapter.delete_chains([scene.doomed.id], tx=tx)
    assert ids(result.deleted) == [scene.doomed.id]


async def blocker(ops: Ops, scene: Scene, tx: Any) -> None:
    await ops.adapter.add_blockers([(scene.ready.id, [scene.blocker.id])], tx=tx)


async def continuation(ops: Ops, scene: Scene, tx: Any) -> None:
    await ops.adapter.get_job(scene.ready.id, lock=True, tx=tx)
    await ops.adapter.create_jobs([ops.next_job(scene.ready, TYPE_D, id=scene.successor_id)], tx=tx)
    await ops.adapter.complete_job(
        scene.ready.id,
        outcome="completed",
        worker_id=None,
        succeeded_by_job_id=scene.successor_id,
        tx=tx,
    )


async def close_chain(ops: Ops, scene: Scene, tx: Any) -> None:
    result = await ops.close_job(scene.blocker.id, output={"closed": True}, tx=tx)
    assert ids(result.unblocked) == [scene.dependent.id]


WRITES: dict[str, Write] = {
    "insert": insert,
    "update": update,
    "claim": claim,
    "delete": delete,
    "blocker": blocker,
    "continuation": continuation,
    "close": close_chain,
}


def due_bucket(due: timedelta | None) -> str:
    if due is None:
        return "none"
    return "now" if due == timedelta(0) else "later"


async def observe(ops: Ops, scene: Scene) -> dict[str, Any]:
    """Everything the non-transactional reads show about the scene."""
    adapter = ops.adapter
    seen: dict[str, Any] = {}
    for job_id in scene.job_ids:
        seen[f"get_job({job_id})"] = await adapter.get_job(job_id)
        seen[f"get_job_blockers({job_id})"] = [
            (c.id, c.tail.id, c.status) for c in await adapter.get_job_blockers(job_id)
        ]
    for chain_id in scene.chain_ids:
        seen[f"get_chain({chain_id})"] = await adapter.get_chain(chain_id)
        seen[f"list_chain_jobs({chain_id})"] = ids(
            (await adapter.list_chain_jobs(chain_id, limit=100)).items
        )
        seen[f"list_blocked_jobs({chain_id})"] = ids(
            (await adapter.list_blocked_jobs(chain_id, limit=100)).items
        )
    for type_name in (TYPE_A, TYPE_B, TYPE_C, TYPE_D):
        seen[f"next_due({type_name})"] = due_bucket(await adapter.next_due([type_name]))
    seen["list_jobs"] = (await adapter.list_jobs(JobFilter(), limit=100)).items
    seen["list_jobs(ready)"] = ids(
        (await adapter.list_jobs(JobFilter(statuses=["ready"]), limit=100)).items
    )
    seen["list_chains"] = (await adapter.list_chains(ChainFilter(), limit=100)).items
    seen["list_chains(open)"] = ids(
        (await adapter.list_chains(ChainFilter(status="open"), limit=100)).items
    )
    seen["list_chains(root_only)"] = ids(
        (await adapter.list_chains(ChainFilter(root_only=True), limit=100)).items
    )
    return seen


async def locked_reads(ops: Ops, scene: Scene) -> dict[str, StoredJob | StoredChain | None]:
    adapter = ops.adapter
    seen: dict[str, StoredJob | StoredChain | None] = {}
    for job_id in (scene.ready.id, scene.scheduled.id, scene.dependent.id, scene.doomed.id):
        seen[f"get_job({job_id}, lock=True)"] = await adapter.get_job(job_id, lock=True)
    for chain_id in (scene.ready.id, scene.blocker.id, scene.doomed.id):
        seen[f"get_chain({chain_id}, lock=True)"] = await adapter.get_chain(chain_id, lock=True)
    return seen


DUE_ORDER = {"now": 0, "later": 1, "none": 2}


def differences(
    before: dict[str, Any], now: dict[str, Any], *, writer_open: bool = False
) -> list[str]:
    """Observations that differ. With ``writer_open``, a ``next_due`` that is later than the
    committed one is allowed (rows the writer locked are skipped)."""
    out = []
    for key in before:
        seen = now.get(key)
        if before[key] == seen:
            continue
        if (
            writer_open
            and key.startswith("next_due(")
            and isinstance(seen, str)
            and DUE_ORDER[seen] > DUE_ORDER[before[key]]
        ):
            continue
        out.append(f"{key}:\n    committed: {before[key]!r}\n    observed:  {seen!r}")
    return out


class TestReadIsolation:
    @pytest.mark.parametrize("write", list(WRITES))
    async def test_reads_without_tx_never_see_uncommitted_work(
        self, queuert_state_harness: StateHarness, write: str
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        scene = await build_scene(ops)
        before = await observe(ops, scene)
        locked_before = await locked_reads(ops, scene)

        async with Competitor(
            lambda: locked_reads(ops, scene), "locked reads without tx next to an open transaction"
        ) as locked:
            with pytest.raises(Boom):
                async with adapter.transaction() as tx:
                    await WRITES[write](ops, scene, tx)
                    during = await within(
                        observe(ops, scene),
                        "reads without tx while another transaction is open",
                    )
                    leaked = differences(before, during, writer_open=True)
                    assert not leaked, (
                        f"a read without tx observed the uncommitted {write}:\n" + "\n".join(leaked)
                    )
                    locked.go()
                    raise Boom()
            locked_seen = await locked.result()
        leaked = differences(locked_before, locked_seen)
        assert not leaked, (
            f"a locked read without tx observed the {write} that was rolled back:\n"
            + "\n".join(leaked)
        )
        after = await observe(ops, scene)
        left = differences(before, after)
        assert not left, f"the rolled-back {write} left traces:\n" + "\n".join(left)

        async with adapter.transaction() as tx:
            await WRITES[write](ops, scene, tx)
        committed = await observe(ops, scene)
        assert differences(before, committed), (
            f"the committed {write} is invisible to reads without tx (the case observes nothing)"
        )

    async def test_reads_without_tx_during_a_savepoint(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        scene = await build_scene(ops)
        before = await observe(ops, scene)
        async with adapter.transaction() as tx:
            async with adapter.savepoint(tx) as sp:
                await close_chain(ops, scene, sp)
                await insert(ops, scene, sp)
            seen = await within(observe(ops, scene), "reads without tx")
            leaked = differences(before, seen, writer_open=True)
            assert not leaked, "a released savepoint is not committed yet:\n" + "\n".join(leaked)
        assert differences(before, await observe(ops, scene))

    async def test_a_worker_lease_is_visible_only_after_commit(
        self, queuert_state_harness: StateHarness
    ) -> None:
        ops = Ops(queuert_state_harness)
        adapter = queuert_state_harness.adapter
        job = await ops.start(TYPE_A)
        async with adapter.transaction() as tx:
            await ops.claim(TYPE_A, tx=tx)
            renewal = await adapter.renew_leases({job.id: HOUR}, worker_id=WORKER, tx=tx)
            assert set(renewal.renewed) == {job.id}
            outside = await adapter.get_job(job.id)
            assert outside is not None and outside.status == "ready", (
                "an uncommitted claim is visible outside its transaction"
            )
        assert (await ops.job(job.id)).leased_by == WORKER
