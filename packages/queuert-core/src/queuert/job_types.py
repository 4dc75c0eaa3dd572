"""Job types: declared once as classes, checked by mypy, used by the client and the worker.

A job type is a subclass of :class:`JobType` (or :class:`EntryJobType` for types that may start a chain)
whose generic arguments say what it takes and gives::

    class Fetch(EntryJobType[FetchIn, FetchOut]): ...
    class Summarize(
        EntryJobType[
            SummarizeIn,               # input
            Summary,                   # output (when the job ends the chain)
            "Publish | Summarize",     # the types it may continue to (a loop back to itself here)
            tuple[Chain[Fetch], Chain[Fetch]],  # the blocker chains it waits for, slot by slot
            "Summary | PublishResult", # what the chain it starts ends with (defaults to its output)
        ]
    ): ...

An *instance* of a job type is a job to create: ``Fetch(FetchIn(url=...), schedule=...)``. Pass it to
``client.start_chain`` to start a chain, or return it from a handler's ``complete`` to continue the chain.

What mypy then checks: only entry types can start chains; the input matches the type; a handler can only
return its declared output or a job of a declared continuation type; blocker outputs read in a handler
have the types of the declared blocker chains; ``wait_for_chain`` returns the chain's declared result.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal

from typing_extensions import Never, TypeVar

from queuert.errors import DuplicateJobTypeError, UnknownJobTypeError, UsageError
from queuert.schedule import Deduplication, Schedule

if TYPE_CHECKING:
    from queuert.models import Chain

__all__ = [
    "BlockerFailurePolicy",
    "BlockerSlots",
    "EntryJobType",
    "JobType",
    "JobTypeRegistry",
    "JobTypeSpec",
]

In = TypeVar("In")
Out = TypeVar("Out")
Next = TypeVar("Next", default=Never)
Blockers = TypeVar("Blockers", default=tuple[()])
Result = TypeVar("Result", default=Out, covariant=True)

BlockerFailurePolicy = Literal["fail", "proceed"]
"""What a job does when one of its blocker chains closes as failed or cancelled: ``fail`` closes it as
failed without running the handler (the default); ``proceed`` runs it and lets the handler look at
each blocker chain's outcome."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class JobType(Generic[In, Out, Next, Blockers, Result]):
    """Base of every job type. Subclass it to declare a type; instantiate the subclass to make a job.

    Class keywords: ``name`` (stored type name; default: the class name in snake_case),
    ``max_attempts`` (opt-in limit after which the chain closes as *failed*), ``on_blocker_failure``
    (see :data:`BlockerFailurePolicy`). Lease and backoff are set where the handler is registered.
    """

    type_name: ClassVar[str] = ""
    entry: ClassVar[bool] = False
    max_attempts: ClassVar[int | None] = None
    on_blocker_failure: ClassVar[BlockerFailurePolicy] = "fail"

    __slots__ = ("blockers", "deduplication", "id", "input", "schedule")

    def __init_subclass__(
        cls,
        *,
        name: str | None = None,
        max_attempts: int | None = None,
        on_blocker_failure: BlockerFailurePolicy | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_abstract_job_type", False):
            return
        type_name = name if name is not None else _snake_case(cls.__name__)
        if not _NAME_RE.match(type_name):
            raise UsageError(
                f"invalid job type name {type_name!r}: use 1-200 of A-Z a-z 0-9 _ . : -"
            )
        cls.type_name = type_name
        cls.entry = issubclass(cls, EntryJobType)
        if max_attempts is not None:
            if (
                isinstance(max_attempts, bool)
                or not isinstance(max_attempts, int)
                or max_attempts < 1
            ):
                raise UsageError(f"max_attempts must be a positive int, not {max_attempts!r}")
            cls.max_attempts = max_attempts
        if on_blocker_failure is not None:
            if on_blocker_failure not in ("fail", "proceed"):
                raise UsageError("on_blocker_failure must be 'fail' or 'proceed'")
            cls.on_blocker_failure = on_blocker_failure
        cls._spec = None

    _spec: ClassVar[JobTypeSpec | None] = None
    _abstract_job_type: ClassVar[bool] = True

    def __init__(
        self,
        input: In,
        *,
        id: str | None = None,
        schedule: Schedule | None = None,
        blockers: Blockers | None = None,
        deduplication: Deduplication | None = None,
    ) -> None:
        if type(self).__dict__.get("_abstract_job_type", False):
            raise UsageError(
                f"{type(self).__name__} is a base class; subclass it to declare a job type"
            )
        if schedule is not None and not isinstance(schedule, Schedule):
            raise UsageError(f"schedule must be a queuert.Schedule, not {schedule!r}")
        if deduplication is not None and not isinstance(deduplication, Deduplication):
            raise UsageError(
                f"deduplication must be a queuert.Deduplication, not {deduplication!r}"
            )
        self.input = input
        self.id = id
        self.schedule = schedule
        self.blockers: Sequence[Chain[Any]] = (
            tuple(typing.cast("Sequence[Chain[Any]]", blockers)) if blockers is not None else ()
        )
        self.deduplication = deduplication

    @classmethod
    def spec(cls) -> JobTypeSpec:
        """The runtime view of this type's declaration (resolved on first use)."""
        if cls._spec is None:
            cls._spec = _resolve_spec(cls)
        return cls._spec

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.input!r})"


class EntryJobType(JobType[In, Out, Next, Blockers, Result]):
    """A job type that may start a chain (``client.start_chain`` accepts only these)."""

    __slots__ = ()
    _abstract_job_type: ClassVar[bool] = True


@dataclass(frozen=True)
class BlockerSlots:
    """The blocker chains a type waits for: fixed slots, then optionally any number of ``rest``."""

    fixed: tuple[tuple[type[JobType[Any, Any, Any, Any, Any]], ...], ...] = ()
    """For each fixed slot, the entry types whose chains may fill it."""
    rest: tuple[type[JobType[Any, Any, Any, Any, Any]], ...] | None = None
    """The entry types allowed in the variadic tail, or ``None`` if there is none."""

    @property
    def declared(self) -> bool:
        return bool(self.fixed) or self.rest is not None


@dataclass(frozen=True)
class JobTypeSpec:
    """What the runtime needs to know about a job type, read from its generic arguments."""

    job_type: type[JobType[Any, Any, Any, Any, Any]]
    input_type: Any
    output_type: Any
    """``Never`` when the type always continues."""
    continues_to: tuple[type[JobType[Any, Any, Any, Any, Any]], ...]
    blockers: BlockerSlots

    @property
    def name(self) -> str:
        return self.job_type.type_name

    @property
    def can_complete(self) -> bool:
        return self.output_type is not Never and self.output_type is not typing.NoReturn


def _namespace(cls: type) -> dict[str, Any]:
    module = sys.modules.get(cls.__module__)
    namespace: dict[str, Any] = dict(vars(module)) if module is not None else {}
    namespace.setdefault(cls.__name__, cls)
    return namespace


def _evaluate(tp: Any, namespace: dict[str, Any]) -> Any:
    """Resolve string and ForwardRef parts of a type expression."""
    if isinstance(tp, str):
        return _evaluate(eval(tp, namespace), namespace)
    if isinstance(tp, typing.ForwardRef):
        return _evaluate(eval(tp.__forward_arg__, namespace), namespace)
    return tp


def _union_members(tp: Any, namespace: dict[str, Any]) -> tuple[Any, ...]:
    tp = _evaluate(tp, namespace)
    if tp is Never or tp is typing.NoReturn:
        return ()
    origin = typing.get_origin(tp)
    if origin is typing.Union or (sys.version_info >= (3, 10) and isinstance(tp, types.UnionType)):
        members: list[Any] = []
        for arg in typing.get_args(tp):
            members.extend(_union_members(arg, namespace))
        return tuple(members)
    return (tp,)


def _job_classes(
    tp: Any, namespace: dict[str, Any], what: str, owner: type
) -> tuple[type[JobType[Any, Any, Any, Any, Any]], ...]:
    out = []
    for member in _union_members(tp, namespace):
        if not (isinstance(member, type) and issubclass(member, JobType)):
            raise UsageError(f"{owner.__name__}: {what} must be job type classes, got {member!r}")
        out.append(member)
    return tuple(out)


def _chain_slot(
    tp: Any, namespace: dict[str, Any], owner: type
) -> tuple[type[JobType[Any, Any, Any, Any, Any]], ...]:
    tp = _evaluate(tp, namespace)
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin is None or getattr(origin, "__name__", "") != "Chain" or len(args) != 1:
        raise UsageError(
            f"{owner.__name__}: each blocker slot must be Chain[SomeEntryType], got {tp!r}"
        )
    classes = _job_classes(args[0], namespace, "blocker chains", owner)
    for cls in classes:
        if not cls.entry:
            raise UsageError(
                f"{owner.__name__}: blocker chains must be of entry types, {cls.__name__} is not"
            )
    return classes


def _blocker_slots(tp: Any, namespace: dict[str, Any], owner: type) -> BlockerSlots:
    tp = _evaluate(tp, namespace)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list or origin is Sequence or origin is typing.Sequence:
        return BlockerSlots(rest=_chain_slot(args[0], namespace, owner))
    if origin is not tuple:
        raise UsageError(
            f"{owner.__name__}: blockers must be a tuple[...] or list[...] of Chain[...]"
        )
    if args == () or args == ((),):
        return BlockerSlots()
    if len(args) == 2 and args[1] is Ellipsis:
        return BlockerSlots(rest=_chain_slot(args[0], namespace, owner))
    fixed: list[tuple[type[JobType[Any, Any, Any, Any, Any]], ...]] = []
    rest = None
    for arg in args:
        arg = _evaluate(arg, namespace)
        unpacked = _unpacked_tuple(arg)
        if unpacked is not None:
            inner = typing.get_args(unpacked)
            if len(inner) != 2 or inner[1] is not Ellipsis:
                raise UsageError(
                    f"{owner.__name__}: only *tuple[Chain[X], ...] may be unpacked in blockers"
                )
            rest = _chain_slot(inner[0], namespace, owner)
        else:
            fixed.append(_chain_slot(arg, namespace, owner))
    return BlockerSlots(fixed=tuple(fixed), rest=rest)


def _unpacked_tuple(arg: Any) -> Any:
    """``*tuple[X, ...]`` / ``Unpack[tuple[X, ...]]`` → ``tuple[X, ...]``; otherwise ``None``."""
    if getattr(arg, "__unpacked__", False):  # 3.11+: *tuple[X, ...]
        return tuple.__class_getitem__(typing.get_args(arg))
    origin = typing.get_origin(arg)
    if origin is not None and getattr(origin, "_name", None) == "Unpack":  # Unpack[tuple[X, ...]]
        return typing.get_args(arg)[0]
    return None


def _resolve_spec(cls: type[JobType[Any, Any, Any, Any, Any]]) -> JobTypeSpec:
    if cls.__dict__.get("_abstract_job_type", False):
        raise UsageError(f"{cls.__name__} is not a job type")
    args: tuple[Any, ...] | None = None
    for klass in cls.__mro__:
        for base in klass.__dict__.get("__orig_bases__", ()):
            origin = typing.get_origin(base)
            if isinstance(origin, type) and issubclass(origin, JobType):
                candidate = typing.get_args(base)
                if not any(isinstance(a, typing.TypeVar) for a in candidate[:2]):
                    args = candidate
                    break
        if args is not None:
            break
    if args is None or len(args) < 2:
        raise UsageError(
            f"{cls.__name__} must subclass JobType[Input, Output, ...] or EntryJobType[...] with concrete types"
        )
    namespace = _namespace(cls)
    input_type = _evaluate(args[0], namespace)
    output_type = _evaluate(args[1], namespace)
    continues_to: tuple[type[JobType[Any, Any, Any, Any, Any]], ...] = ()
    if len(args) > 2 and not isinstance(args[2], typing.TypeVar):
        continues_to = _job_classes(args[2], namespace, "continuation targets", cls)
    blockers = BlockerSlots()
    if len(args) > 3 and not isinstance(args[3], typing.TypeVar):
        blockers = _blocker_slots(args[3], namespace, cls)
    return JobTypeSpec(
        job_type=cls,
        input_type=input_type,
        output_type=output_type,
        continues_to=continues_to,
        blockers=blockers,
    )


class JobTypeRegistry:
    """The job types a client knows, by name. Built from the classes given to the client."""

    def __init__(self, job_types: Sequence[type[JobType[Any, Any, Any, Any, Any]]]) -> None:
        by_name: dict[str, type[JobType[Any, Any, Any, Any, Any]]] = {}
        duplicates: list[str] = []
        pending = list(job_types)
        # Types reachable as continuation targets or blocker chains are registered too.
        while pending:
            jt = pending.pop()
            if not (isinstance(jt, type) and issubclass(jt, JobType)):
                raise UsageError(f"job_types must be JobType subclasses, got {jt!r}")
            existing = by_name.get(jt.type_name)
            if existing is jt:
                continue
            if existing is not None:
                duplicates.append(jt.type_name)
                continue
            by_name[jt.type_name] = jt
            spec = jt.spec()
            pending.extend(spec.continues_to)
            for slot in spec.blockers.fixed:
                pending.extend(slot)
            if spec.blockers.rest:
                pending.extend(spec.blockers.rest)
        if duplicates:
            raise DuplicateJobTypeError(sorted(set(duplicates)))
        self._by_name = by_name

    @property
    def type_names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, type_name: str) -> type[JobType[Any, Any, Any, Any, Any]] | None:
        return self._by_name.get(type_name)

    def require(self, type_name: str) -> type[JobType[Any, Any, Any, Any, Any]]:
        jt = self._by_name.get(type_name)
        if jt is None:
            raise UnknownJobTypeError(type_name, self.type_names)
        return jt

    def check_registered(self, job_type: type[JobType[Any, Any, Any, Any, Any]]) -> None:
        if self._by_name.get(job_type.type_name) is not job_type:
            raise UnknownJobTypeError(job_type.type_name, self.type_names)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._by_name


def lease_or_default(value: timedelta | float | None, default: timedelta) -> timedelta:
    if value is None:
        return default
    if isinstance(value, timedelta):
        return value
    return timedelta(seconds=value)
