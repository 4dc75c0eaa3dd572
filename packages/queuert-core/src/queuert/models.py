"""What callers read back: :class:`Job` and :class:`Chain` (with typed outputs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, overload

from typing_extensions import TypeVar

from queuert._declared import WithChainResult, WithOutput
from queuert._fastinit import fast_init
from queuert.errors import ChainCancelledError, ChainFailedError, UsageError
from queuert.job_types import JobType
from queuert.state import ChainStatus, JobStatus, Outcome

__all__ = ["Chain", "Job"]

J = TypeVar("J", covariant=True)
"""The chain's type: the job type of its first job."""
R = TypeVar("R")
O = TypeVar("O")  # noqa: E741
I = TypeVar("I")  # noqa: E741


@fast_init
@dataclass(frozen=True)
class Job:
    """One job as callers see it. ``input``/``output`` are decoded with the job type's declared types
    when the client knows the type, and plain JSON otherwise."""

    id: str
    type_name: str
    chain_id: str
    chain_type_name: str
    status: JobStatus
    input: Any
    output: Any
    attempt: int
    created_at: datetime
    scheduled_at: datetime
    completed_at: datetime | None
    completed_by: str | None
    succeeded_by_job_id: str | None
    last_attempt_at: datetime | None
    last_attempt_error: str | None
    leased_by: str | None
    leased_until: datetime | None
    deduplication_key: str | None = None
    priority: int = 0
    """Among ready jobs, workers claim higher priorities first."""
    limit_key: str | None = None
    """The key its type's ``key_limit`` counts by (from the input, when the job was created)."""
    unreadable: str | None = None
    """Why a stored time of this job cannot be read (a row edited by hand, or a time outside
    Python's years 1-9999): that time reads as
    1970-01-01 UTC (``None`` where it is optional) and a worker fails the job at once."""

    @property
    def is_closed(self) -> bool:
        return self.status in ("continued", "completed", "failed", "cancelled")


class _ChainOutput:
    """``Chain.output``, typed by the chain's declaration: ``ChainResult[R]`` gives ``R``, otherwise
    the chain type's output."""

    @overload
    def __get__(self, chain: None, owner: type[Any]) -> _ChainOutput: ...

    @overload
    def __get__(self, chain: Chain[WithChainResult[R]], owner: type[Any]) -> R: ...

    @overload
    def __get__(self, chain: Chain[WithOutput[O]], owner: type[Any]) -> O: ...

    def __get__(self, chain: Chain[Any] | None, owner: type[Any]) -> Any:
        if chain is None:
            return self
        if chain.outcome == "completed":
            return chain._output
        if chain.outcome == "failed":
            raise ChainFailedError(chain.id, chain.tail.id, chain.tail.last_attempt_error)
        if chain.outcome == "cancelled":
            raise ChainCancelledError(chain.id)
        raise UsageError(f"chain {chain.id} is still open; it has no output yet")


@fast_init
@dataclass(frozen=True)
class Chain(Generic[J]):
    """A chain: its first job (``root``, which *is* the chain) and its current ``tail``.

    ``Chain[Fetch]`` is a chain started with a ``Fetch`` job; its ``output`` has the type declared as
    ``Fetch``'s chain result.
    """

    id: str
    type_name: str
    status: ChainStatus
    outcome: Outcome | None
    """``None`` while open; how it closed otherwise."""
    root: Job
    tail: Job
    deduplicated: bool = False
    """True when ``start_chain`` found an existing chain instead of starting one."""
    _output: Any = field(default=None, repr=False)

    @property
    def input(self: Chain[JobType[I, Any]]) -> I:
        """The input of the chain's first job."""
        value: I = self.root.input
        return value

    output = _ChainOutput()
    """The chain's result: its declared ``ChainResult``, else its type's output. Raises if the chain
    is open, failed or cancelled."""

    @property
    def created_at(self) -> datetime:
        return self.root.created_at

    @property
    def closed_at(self) -> datetime | None:
        return self.tail.completed_at if self.status == "closed" else None

    @property
    def is_closed(self) -> bool:
        return self.status == "closed"
