"""An in-memory state adapter whose ids are not UUIDs, for the suites' non-UUID runs.

Its ids are 24 lower-case hex digits (the shape of a MongoDB ObjectId). It refuses, and records,
every id its policy does not accept, so a case that still makes or hard-codes a UUID fails (also when
it expected some error and swallowed the refusal: the fixture checks the record at teardown).
"""

from __future__ import annotations

import inspect
import itertools
import os
import re
from collections.abc import AsyncIterator, Callable, Iterable
from functools import wraps
from typing import Any

import pytest_asyncio
from queuert.ids import IdPolicy
from queuert.in_memory import InMemoryStateAdapter, InMemoryTransaction
from queuert.state import ChainFilter, Completion, JobFilter, NewJob, StateAdapter
from queuert_conformance import StateHarness

_HEX24 = re.compile(r"[0-9a-f]{24}")
_counter = itertools.count(int.from_bytes(os.urandom(8), "big"))

HEX24_IDS = IdPolicy(
    name="hex24",
    generate=lambda: f"{next(_counter):024x}",
    is_valid=lambda value: _HEX24.fullmatch(value) is not None,
    describe="24 lower-case hex digits",
)
"""Like ObjectIds made by one process: distinct, and growing in the order they are made (the order
that breaks ties between jobs created at the same store time)."""


def _new_job_ids(jobs: Iterable[NewJob]) -> Iterable[object]:
    for job in jobs:
        yield job.id
        if job.chain_id is not None:
            yield job.chain_id
        if job.deduplication is not None:
            yield from job.deduplication.exclude_chain_ids


def _filter_ids(filter: ChainFilter | JobFilter) -> Iterable[object]:
    yield from filter.chain_ids or ()
    yield from filter.job_ids or ()


def _completion_ids(completions: Iterable[Completion]) -> Iterable[object]:
    for completion in completions:
        yield completion.job_id
        if completion.succeeded_by_job_id is not None:
            yield completion.succeeded_by_job_id


_ID_ARGUMENTS: dict[str, Callable[[dict[str, Any]], Iterable[object]]] = {
    "create_jobs": lambda a: _new_job_ids(a["jobs"]),
    "add_blockers": lambda a: [i for job_id, chains in a["links"] for i in (job_id, *chains)],
    "get_job": lambda a: [a["job_id"]],
    "get_chain": lambda a: [a["chain_id"]],
    "get_job_blockers": lambda a: [a["job_id"]],
    "list_chains": lambda a: _filter_ids(a["filter"]),
    "list_jobs": lambda a: _filter_ids(a["filter"]),
    "list_chain_jobs": lambda a: [a["chain_id"]],
    "list_blocked_jobs": lambda a: [a["chain_id"]],
    "renew_leases": lambda a: list(a["leases"]),
    "complete_job": lambda a: [a["job_id"], *filter(None, [a.get("succeeded_by_job_id")])],
    "complete_jobs": lambda a: _completion_ids(a["completions"]),
    "reschedule_job": lambda a: [a["job_id"]],
    "reap_expired_leases": lambda a: a.get("exclude_job_ids", ()),
    "trigger_jobs": lambda a: a["job_ids"],
    "delete_chains": lambda a: a["chain_ids"],
}
"""Every operation that takes ids, and the ids it was given (from its bound arguments)."""


class Hex24InMemoryStateAdapter(InMemoryStateAdapter):
    """The in-memory adapter with 24-hex-digit ids, refusing any other id it is handed."""

    ids = HEX24_IDS

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[tuple[str, object]] = []
        """(operation, id) of every id handed to this adapter that its policy does not accept."""
        for name, ids_of in _ID_ARGUMENTS.items():
            setattr(self, name, self._checking(name, getattr(self, name), ids_of))

    def _checking(
        self,
        name: str,
        operation: Callable[..., Any],
        ids_of: Callable[[dict[str, Any]], Iterable[object]],
    ) -> Callable[..., Any]:
        signature = inspect.signature(operation)

        @wraps(operation)
        async def checked(*args: Any, **kwargs: Any) -> Any:
            arguments = signature.bind(*args, **kwargs).arguments
            bad = [
                value
                for value in ids_of(arguments)
                if not isinstance(value, str) or not self.ids.is_valid(value)
            ]
            if bad:
                self.refused.extend((name, value) for value in bad)
                raise AssertionError(
                    f"{name} was given ids outside the {self.ids.name} policy: {bad}"
                )
            return await operation(*args, **kwargs)

        return checked


@pytest_asyncio.fixture
async def queuert_state_harness() -> AsyncIterator[StateHarness]:
    """The suites' harness over a fresh :class:`Hex24InMemoryStateAdapter`."""
    adapter = Hex24InMemoryStateAdapter()
    await adapter.migrate()

    async def open_sharing() -> StateAdapter[InMemoryTransaction]:
        return adapter.another()

    yield StateHarness(adapter=adapter, poison=adapter.poison, open_sharing=open_sharing)
    await adapter.close()
    assert adapter.refused == [], f"the suites handed the adapter foreign ids: {adapter.refused}"
