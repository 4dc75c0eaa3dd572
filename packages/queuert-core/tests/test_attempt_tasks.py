"""Each attempt runs in a task of its own, which the worker owns until it ends.

* The handler runs as that task (``asyncio.current_task()``), before and after it suspends, also
  when it never suspends (Python 3.12 and newer start the task eagerly, in the claim loop's step).
* A context variable a handler sets stays in its attempt's task.
* A task of an attempt that ended, whatever its outcome, is no longer among the worker's tasks.
* A task factory the application set on the loop makes the attempts' tasks too.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from queuert import Attempt, Backoff, Client, EntryJobType, InMemoryStateAdapter, Worker

_seen_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("seen", default=None)


@dataclass
class Step:
    kind: str
    """``return`` (no suspension), ``suspend`` (awaits first), or ``fail`` (raises on its first
    attempt, then returns)."""


class Stepped(EntryJobType[Step, str], name="attempt_tasks_stepped"):
    pass


async def _process(kinds: list[str]) -> None:
    state = InMemoryStateAdapter()
    client: Client[Any] = Client(state)
    worker = Worker(client, concurrency=3, backoff=Backoff(initial=0.001, maximum=0.001, jitter=0))
    tasks: list[asyncio.Task[Any]] = []
    leaked: list[str] = []

    @worker.handler(Stepped)
    async def stepped(attempt: Attempt[Stepped]) -> str:
        task = asyncio.current_task()
        assert task is not None and task.get_name() == f"queuert-attempt-{attempt.job.id}"
        tasks.append(task)
        if _seen_var.get() is not None:
            leaked.append(attempt.job.id)
        _seen_var.set(attempt.job.id)
        kind = attempt.input.kind
        if kind == "suspend":
            await asyncio.sleep(0)
            assert asyncio.current_task() is task
            assert task in worker._tasks  # owned while it runs: close() waits for it
        if kind == "fail" and attempt.number == 1:
            raise RuntimeError("first attempt fails")
        return kind

    async with state, client, worker:
        async with client.transaction() as tx:
            chains = [await client.start_chain(Stepped(Step(k)), tx=tx) for k in kinds]
        for kind, chain in zip(kinds, chains, strict=True):
            assert await client.wait_for_chain(chain, timeout=10) == kind
        await asyncio.wait(tasks)
        assert not [t for t in tasks if t in worker._tasks]
        assert worker.in_flight == 0
    assert leaked == []
    assert _seen_var.get() is None


@settings(max_examples=15, deadline=None)
@given(st.lists(st.sampled_from(["return", "suspend", "fail"]), min_size=1, max_size=12))
def test_attempts_run_in_their_own_tasks_and_leave_none_behind(kinds: list[str]) -> None:
    asyncio.run(_process(kinds))


def test_a_task_factory_of_the_loop_makes_the_attempt_tasks() -> None:
    made: list[asyncio.Task[Any]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)  # named by create_task after the factory returns it
        return task

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(factory)
        await _process(["return", "suspend", "fail"])

    asyncio.run(main())
    names = [task.get_name() for task in made]
    attempts = [name for name in names if name.startswith("queuert-attempt-")]
    assert len(attempts) == 4, names  # three jobs, one of them retried once
