"""What type checkers read of a job type's declaration, without a plugin.

A job type declares its input and output as the generic arguments of ``JobType`` and the rest by
name, with mixins (``Continues``, ``Blockers``, ``ChainResult``; see :mod:`queuert.job_types`). Each
part of a declaration is a *phantom attribute*: an annotation on the class, inside ``if
TYPE_CHECKING``, that exists only for the type checker. The job type base declares the defaults (no
continuation, no blockers) and each mixin overrides one of them, so every job type class carries all
of them. Their names are private (``__queuert_next``): mypy and pyright then take a mixin's
declaration as an override of the default rather than as two bases disagreeing.

The APIs then match a job type against the protocols below to pull out the parts they need: the
attempt's ``complete`` takes ``Completable[O, C]`` and accepts ``O | C``, ``wait_for_chain`` takes
``Chain[WithChainResult[R]]`` and returns ``R``, and so on. Where a part is checked
against what a caller passes (outputs, continuations, blockers, inputs) the protocol's type variables
are invariant, so mypy infers each part exactly from the declaration instead of widening it to fit
the argument; where a part is only returned (a chain's result) they are covariant, so the result
also fits a wider expected type (``x: object = await client.wait_for_chain(...)``).
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from typing_extensions import Never

__all__ = [
    "Completable",
    "Constructible",
    "Handled",
    "NoContinuation",
    "WithBlockers",
    "WithChainResult",
    "WithOutput",
    "WorkerlessCompletable",
]

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741
C = TypeVar("C")
B = TypeVar("B")
O_co = TypeVar("O_co", covariant=True)
R_co = TypeVar("R_co", covariant=True)
S_co = TypeVar("S_co", covariant=True)


class NoContinuation:
    """The continuation type of a job type that declares none. It has no instances; mypy shows it
    in messages (``expected "Receipt | NoContinuation"``) where a job type may not continue."""

    __slots__ = ()

    def __new__(cls) -> Never:
        raise TypeError("NoContinuation has no instances: the job type declares no continuation")


class Constructible(Protocol[I, B, S_co]):
    """A job type's input and blocker slots, and the type itself: what its constructor accepts and
    makes."""

    __queuert_input: I
    __queuert_blockers: B

    @property
    def __queuert_self(self) -> S_co: ...


class Completable(Protocol[O, C]):
    """A job type's output and continuation types: what completes its job."""

    __queuert_output: O
    __queuert_next: C


class WorkerlessCompletable(Protocol[I, O, C]):
    """Input, output and continuations: what a workerless completion reads and returns."""

    __queuert_input: I
    __queuert_output: O
    __queuert_next: C


class Handled(Protocol[O, C, S_co]):
    """Output, continuations and the job type itself: what a handler for it is checked against."""

    __queuert_output: O
    __queuert_next: C

    @property
    def __queuert_self(self) -> S_co: ...


class WithBlockers(Protocol[B]):
    """A job type's blocker slots (``tuple[()]`` when it declares none)."""

    __queuert_blockers: B


class WithChainResult(Protocol[R_co]):
    """A job type that declares its chain's result with ``ChainResult``."""

    @property
    def __queuert_result(self) -> R_co: ...


class WithOutput(Protocol[O_co]):
    """A job type's output (its chain's result when it declares no ``ChainResult``)."""

    @property
    def __queuert_output(self) -> O_co: ...
