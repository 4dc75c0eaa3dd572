"""Job types: declared once as classes, checked by mypy, used by the client and the worker.

A job type is a subclass of :class:`JobType` (or :class:`EntryJobType` for types that may start a
chain) with its input and output types as generic arguments. Everything else it declares is named by
a mixin::

    class Fetch(EntryJobType[FetchIn, FetchOut]): ...


    class Summarize(
        EntryJobType[SummarizeIn, Summary],  # input, output (when the job ends the chain)
        Continues["Publish | Summarize"],  # the types it may continue to (here also itself)
        Blockers[tuple[Chain[Fetch], Chain[Fetch]]],  # the chains it waits for, slot by slot
        ChainResult["Summary | PublishResult"],  # what a chain it starts ends with
    ): ...

An *instance* of a job type is a job to create: ``Fetch(FetchIn(url=...), schedule=...)``. Pass it to
``client.start_chain`` to start a chain, or return it from a handler to continue the chain.

What mypy then checks: only entry types can start chains; the input matches the type; blockers match
the declared slots; a handler can only return its declared output or a job of a declared continuation
type; blocker outputs read in a handler have the types of the declared blocker chains;
``wait_for_chain`` returns the chain's declared result. The runtime reads the same declaration from
the class (:meth:`JobType.spec`) and checks it again for code mypy does not see. How mypy reads it is
described in :mod:`queuert._declared`.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, cast

from typing_extensions import Never

from queuert._declared import Constructible, NoContinuation
from queuert.errors import DuplicateJobTypeError, UnknownJobTypeError, UsageError
from queuert.limits import ConcurrencyLimit
from queuert.schedule import Deduplication, Schedule

if TYPE_CHECKING:
    from typing_extensions import Self

    from queuert.models import Chain

__all__ = [
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "AnyJobType",
    "BlockerFailurePolicy",
    "BlockerSlots",
    "Blockers",
    "ChainResult",
    "Continues",
    "EntryJobType",
    "JobType",
    "JobTypeRegistry",
    "JobTypeSpec",
    "NoContinuation",
    "check_priority",
    "job_type_name",
]

In = TypeVar("In")
Out = TypeVar("Out")
I = TypeVar("I")  # noqa: E741
C = TypeVar("C")
B = TypeVar("B")
R = TypeVar("R")
S = TypeVar("S")

BlockerFailurePolicy = Literal["fail", "proceed"]
"""What a job does when one of its blocker chains closes as failed or cancelled: ``fail`` closes it as
failed without running the handler (the default); ``proceed`` runs it and lets the handler look at
each blocker chain's outcome."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class _JobTypeBase:
    """What every job type and declaration mixin shares: the class keywords, the job's fields and
    the constructor. Users subclass :class:`JobType` or :class:`EntryJobType`."""

    type_name: ClassVar[str] = ""
    entry: ClassVar[bool] = False
    max_attempts: ClassVar[int | None] = None
    on_blocker_failure: ClassVar[BlockerFailurePolicy] = "fail"
    concurrency_limit: ClassVar[ConcurrencyLimit] = ConcurrencyLimit()
    limit_key_of: ClassVar[Callable[[Any], str] | None] = None
    _spec: ClassVar[JobTypeSpec | None] = None
    _abstract_job_type: ClassVar[bool] = True

    __slots__ = ("blockers", "deduplication", "id", "input", "priority", "schedule")

    input: Any
    id: str | None
    schedule: Schedule | None
    blockers: Sequence[Chain[Any]]
    deduplication: Deduplication | None
    priority: int | None

    if TYPE_CHECKING:
        # the defaults of the declaration (see queuert._declared); the mixins override them
        __queuert_next: NoContinuation
        __queuert_blockers: tuple[()]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if not cls.__dict__.get("_abstract_job_type", False) and not issubclass(cls, JobType):
            raise UsageError(
                f"{cls.__name__} must subclass JobType[Input, Output] or EntryJobType[Input, Output]; "
                "Continues, Blockers and ChainResult only add to such a declaration"
            )
        super().__init_subclass__(**kwargs)

    def __new__(
        cls: type[Constructible[I, B, S]],
        input: I,
        *,
        id: str | None = None,
        schedule: Schedule | None = None,
        blockers: B | None = None,
        deduplication: Deduplication | None = None,
        priority: int | None = None,
    ) -> S:
        # ``cls`` is typed by what the class declares (its input and blocker slots, and the class
        # itself), so type checkers check the arguments of ``Summarize(...)`` against Summarize's
        # declaration and see a ``Summarize`` come out.
        klass: type[_JobTypeBase] = cls  # type: ignore[assignment]
        if klass.__dict__.get("_abstract_job_type", False):
            raise UsageError(f"{klass.__name__} is a base class; subclass it to declare a job type")
        if schedule is not None and not isinstance(schedule, Schedule):
            raise UsageError(f"schedule must be a queuert.Schedule, not {schedule!r}")
        if deduplication is not None and not isinstance(deduplication, Deduplication):
            raise UsageError(
                f"deduplication must be a queuert.Deduplication, not {deduplication!r}"
            )
        if priority is not None:
            check_priority(priority)
        self = object.__new__(klass)
        self.input = input
        self.id = id
        self.schedule = schedule
        self.blockers = (
            tuple(cast("Sequence[Chain[Any]]", blockers)) if blockers is not None else ()
        )
        self.deduplication = deduplication
        self.priority = priority
        return self  # type: ignore[return-value]

    @classmethod
    def spec(cls) -> JobTypeSpec:
        """The runtime view of this type's declaration (resolved on first use)."""
        spec = cls._spec
        if spec is None:
            spec = cls._spec = _resolve_spec(cls)
        return spec

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.input!r})"


class JobType(_JobTypeBase, Generic[In, Out]):
    """Base of every job type: ``class Resize(JobType[Image, Url]): ...`` takes an ``Image`` and
    closes its chain with a ``Url``. Instantiate the subclass to make a job.

    Class keywords: ``name`` (stored type name; default: the class name in snake_case),
    ``max_attempts`` (opt-in limit after which the chain closes as *failed*), ``on_blocker_failure``
    (see :data:`BlockerFailurePolicy`), ``limit`` (at most this many of its jobs run at once across
    every worker), ``key_limit`` with ``limit_key`` (a function of the input returning a string: at
    most ``key_limit`` jobs with the same key run at once; 1 makes each key a singleton). Lease and
    backoff are set where the handler is registered.
    Add :class:`Continues`, :class:`Blockers` and :class:`ChainResult` to declare more.
    """

    __slots__ = ()
    _abstract_job_type: ClassVar[bool] = True

    def __init_subclass__(
        cls,
        *,
        name: str | None = None,
        max_attempts: int | None = None,
        on_blocker_failure: BlockerFailurePolicy | None = None,
        limit: int | None = None,
        key_limit: int | None = None,
        limit_key: Callable[[Any], str] | None = None,
    ) -> None:
        super().__init_subclass__()
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
        if (key_limit is None) != (limit_key is None):
            raise UsageError("key_limit and limit_key go together: a limit per key needs the key")
        if limit_key is not None and not callable(limit_key):
            raise UsageError(f"limit_key must be a function of the input, not {limit_key!r}")
        if limit is not None or key_limit is not None:
            cls.concurrency_limit = ConcurrencyLimit(limit=limit, key_limit=key_limit)
        if limit_key is not None:
            cls.limit_key_of = staticmethod(limit_key)
        cls._spec = None

    if TYPE_CHECKING:
        input: In
        __queuert_input: In
        __queuert_output: Out

        @property
        def __queuert_self(self) -> Self: ...


class EntryJobType(JobType[In, Out]):
    """A job type that may start a chain (``client.start_chain`` accepts only these)."""

    __slots__ = ()
    _abstract_job_type: ClassVar[bool] = True


class Continues(_JobTypeBase, Generic[C]):
    """Declares the job types a job may continue its chain with: ``Continues[Publish]``, a union
    ``Continues[ChargeCard | SendInvoice]``, or a string for types defined later or for the type
    itself (``Continues["Countdown"]``). Without it, a job type cannot continue."""

    __slots__ = ()
    _abstract_job_type: ClassVar[bool] = True

    if TYPE_CHECKING:
        __queuert_next: C


class Blockers(_JobTypeBase, Generic[B]):
    """Declares the chains a job waits for before it runs, slot by slot:
    ``Blockers[tuple[Chain[LoadUser], Chain[LoadOrders]]]`` (fixed slots),
    ``Blockers[tuple[Chain[FetchPrice], ...]]`` (any number), or fixed slots then any number
    (``tuple[Chain[A], Unpack[tuple[Chain[B], ...]]]``). Only entry types can be blockers."""

    __slots__ = ()
    _abstract_job_type: ClassVar[bool] = True

    if TYPE_CHECKING:
        __queuert_blockers: B


class ChainResult(_JobTypeBase, Generic[R]):
    """Declares what a chain *started* by this type ends with, when that is not this type's own
    output (the chain ends in a continuation): ``ChainResult[Url]``, ``ChainResult["Paid | Refused"]``.
    ``wait_for_chain`` and ``Chain.output`` return it."""

    __slots__ = ()
    _abstract_job_type: ClassVar[bool] = True

    if TYPE_CHECKING:
        __queuert_result: R


AnyJobType = type[JobType[Any, Any]]
"""Any job type class."""


MIN_PRIORITY = -(2**31)
MAX_PRIORITY = 2**31 - 1


def check_priority(priority: object) -> int:
    """``priority`` if it is an int from :data:`MIN_PRIORITY` to :data:`MAX_PRIORITY`, else a
    :class:`~queuert.errors.UsageError`."""
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not MIN_PRIORITY <= priority <= MAX_PRIORITY
    ):
        raise UsageError(
            f"priority must be an int from {MIN_PRIORITY} to {MAX_PRIORITY}, not {priority!r}"
        )
    return priority


def job_type_name(value: str | AnyJobType, *, argument: str = "type_names") -> str:
    """The stored type name of a job type class, or ``value`` itself when it is already a name."""
    if isinstance(value, str):
        return value
    if isinstance(value, type) and issubclass(value, JobType) and value.type_name:
        return value.type_name
    raise UsageError(f"{argument} takes job type names or job type classes, not {value!r}")


@dataclass(frozen=True)
class BlockerSlots:
    """The blocker chains a type waits for: fixed slots, then optionally any number of ``rest``."""

    fixed: tuple[tuple[AnyJobType, ...], ...] = ()
    """For each fixed slot, the entry types whose chains may fill it."""
    rest: tuple[AnyJobType, ...] | None = None
    """The entry types allowed in the variadic tail, or ``None`` if there is none."""

    @property
    def declared(self) -> bool:
        return bool(self.fixed) or self.rest is not None


@dataclass(frozen=True)
class JobTypeSpec:
    """What the runtime needs to know about a job type, read from its declaration."""

    job_type: AnyJobType
    input_type: Any
    output_type: Any
    """``Never`` when the type always continues."""
    continues_to: tuple[AnyJobType, ...]
    blockers: BlockerSlots

    @property
    def name(self) -> str:
        return self.job_type.type_name

    @property
    def can_complete(self) -> bool:
        return self.output_type is not Never and self.output_type is not typing.NoReturn

    @property
    def completes_with_none(self) -> bool:
        """The declared output is ``None``: a handler that returns nothing completes the job."""
        return self.output_type is None or self.output_type is type(None)


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
) -> tuple[AnyJobType, ...]:
    out = []
    for member in _union_members(tp, namespace):
        if not (isinstance(member, type) and issubclass(member, JobType)):
            raise UsageError(f"{owner.__name__}: {what} must be job type classes, got {member!r}")
        out.append(member)
    return tuple(out)


def _chain_slot(tp: Any, namespace: dict[str, Any], owner: type) -> tuple[AnyJobType, ...]:
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
    fixed: list[tuple[AnyJobType, ...]] = []
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


def _declared(cls: type) -> dict[type, tuple[Any, ...]]:
    """The generic arguments of each declaration base (``JobType``, ``Continues``, ...) of ``cls``,
    the nearest in the MRO winning (a subclass of a job type inherits its declaration)."""
    found: dict[type, tuple[Any, ...]] = {}
    for klass in cls.__mro__:
        for base in klass.__dict__.get("__orig_bases__", ()):
            origin = typing.get_origin(base)
            if not isinstance(origin, type) or not issubclass(origin, _JobTypeBase):
                continue
            kind = JobType if issubclass(origin, JobType) else origin
            args = typing.get_args(base)
            if kind in found or any(isinstance(a, typing.TypeVar) for a in args):
                continue
            found[kind] = args
    return found


def _resolve_spec(cls: type[_JobTypeBase]) -> JobTypeSpec:
    if cls.__dict__.get("_abstract_job_type", False) or not issubclass(cls, JobType):
        raise UsageError(f"{cls.__name__} is not a job type")
    declared = _declared(cls)
    io = declared.get(JobType)
    if io is None or len(io) != 2:
        raise UsageError(
            f"{cls.__name__} must subclass JobType[Input, Output] or EntryJobType[Input, Output] "
            "with concrete types"
        )
    namespace = _namespace(cls)
    continues_to: tuple[AnyJobType, ...] = ()
    if Continues in declared:
        continues_to = _job_classes(declared[Continues][0], namespace, "continuation targets", cls)
    blockers = BlockerSlots()
    if Blockers in declared:
        blockers = _blocker_slots(declared[Blockers][0], namespace, cls)
    return JobTypeSpec(
        job_type=cls,
        input_type=_evaluate(io[0], namespace),
        output_type=_evaluate(io[1], namespace),
        continues_to=continues_to,
        blockers=blockers,
    )


class JobTypeRegistry:
    """The job types a client knows, by name: the classes given to the client and those of the
    handlers registered with its workers, each with every type reachable from it as a continuation
    target or blocker chain."""

    def __init__(self, job_types: Sequence[AnyJobType] = ()) -> None:
        self._by_name: dict[str, AnyJobType] = {}
        self.add(job_types)

    def add(self, job_types: Sequence[AnyJobType]) -> None:
        """Register ``job_types`` and the types reachable from them; all or nothing. A type
        already registered is skipped; another class with a registered name raises
        :class:`~queuert.errors.DuplicateJobTypeError`."""
        by_name = dict(self._by_name)
        duplicates: list[str] = []
        pending = list(job_types)
        while pending:
            jt = pending.pop()
            if not (isinstance(jt, type) and issubclass(jt, JobType)) or not jt.type_name:
                raise UsageError(f"job types must be JobType subclasses, got {jt!r}")
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

    def get(self, type_name: str) -> AnyJobType | None:
        return self._by_name.get(type_name)

    def require(self, type_name: str) -> AnyJobType:
        jt = self._by_name.get(type_name)
        if jt is None:
            raise UnknownJobTypeError(type_name, self.type_names)
        return jt

    def check_registered(self, job_type: AnyJobType) -> None:
        if self._by_name.get(job_type.type_name) is not job_type:
            raise UnknownJobTypeError(job_type.type_name, self.type_names)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._by_name
