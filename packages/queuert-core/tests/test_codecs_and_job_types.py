"""Codecs (default and pydantic) and the runtime reading of job type declarations."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from queuert import (
    Attempt,
    Blockers,
    Chain,
    Client,
    CodecError,
    Continues,
    DefaultCodec,
    DuplicateJobTypeError,
    EntryJobType,
    InMemoryStateAdapter,
    JobType,
    JobTypeValidationError,
    NotJsonError,
    UsageError,
    Worker,
)
from queuert.codec import _to_json
from queuert.pydantic import PydanticCodec
from typing_extensions import Never, TypedDict, Unpack


class Color(enum.Enum):
    RED = "red"


@dataclass
class Inner:
    n: int
    color: Color = Color.RED


@dataclass
class Outer:
    name: str
    items: list[Inner] = field(default_factory=list)
    maybe: Inner | None = None


class Point(TypedDict):
    x: int
    y: int


class Model(pydantic.BaseModel):
    name: str
    count: int


def test_default_codec_round_trips_nested_dataclasses() -> None:
    codec = DefaultCodec()
    value = Outer("a", [Inner(1), Inner(2)], Inner(3))
    encoded = codec.encode(Outer, value)
    assert encoded == {
        "name": "a",
        "items": [{"n": 1, "color": "red"}, {"n": 2, "color": "red"}],
        "maybe": {"n": 3, "color": "red"},
    }
    assert codec.decode(Outer, encoded) == value
    assert codec.decode(Point, {"x": 1, "y": 2}) == {"x": 1, "y": 2}
    with pytest.raises(CodecError):
        codec.encode(Outer, Inner(1))


@dataclass
class _DictLike(dict):  # type: ignore[type-arg]
    """A dataclass that is also a dict: encoded as the dict it is."""

    tag: str = "t"


_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=4)
    | st.sampled_from([Color.RED, object(), {1}])
    | st.builds(Inner, st.integers())
)


@st.composite
def _encodable(draw: st.DrawFn, children: st.SearchStrategy[Any]) -> Any:
    kind = draw(st.sampled_from(["list", "tuple", "dict", "mapping", "outer", "dictlike"]))
    if kind in ("list", "tuple"):
        items = draw(st.lists(children, max_size=3))
        return items if kind == "list" else tuple(items)
    if kind in ("dict", "mapping"):
        keys = st.text(max_size=3) | st.integers(0, 2) if kind == "dict" else st.text(max_size=3)
        d = draw(st.dictionaries(keys, children, max_size=3))
        return d if kind == "dict" else MappingProxyType(d)
    if kind == "outer":
        return Outer(draw(st.text(max_size=3)), draw(st.lists(st.builds(Inner, st.integers()))))
    like = _DictLike()
    like.update(draw(st.dictionaries(st.text(max_size=3), children, max_size=2)))
    return like


def _encoded(encode: Any) -> tuple[str, str]:
    try:
        return "ok", repr(encode())
    except NotJsonError as exc:
        return "refused", exc.path


@given(st.recursive(_leaves, _encodable, max_leaves=10))
def test_default_codec_shortcut_agrees_with_the_general_conversion(value: Any) -> None:
    """DefaultCodec.encode converts exact built-in types and plain dataclasses without building paths;
    for anything it must give what the general conversion gives, or refuse at the same path."""
    assert _encoded(lambda: DefaultCodec().encode(Any, value)) == _encoded(
        lambda: _to_json(value, "$")
    )


def test_pydantic_codec_validates_both_ways() -> None:
    codec = PydanticCodec()
    assert codec.encode(Model, Model(name="a", count=1)) == {"name": "a", "count": 1}
    assert codec.decode(Model, {"name": "a", "count": 1}) == Model(name="a", count=1)
    with pytest.raises(CodecError):
        codec.encode(Model, {"name": "a", "count": "many"})
    with pytest.raises(CodecError):
        codec.decode(Model, {"name": "a"})
    assert codec.encode(Point, {"x": 1, "y": 2}) == {"x": 1, "y": 2}
    with pytest.raises(CodecError):
        codec.encode(
            Model, Model.model_construct(name="a", count="many")
        )  # built without validation
    assert codec.encode(Inner, Inner("3")) == {"n": 3, "color": "red"}  # type: ignore[arg-type]
    assert codec.decode(Outer, {"name": "b", "items": [{"n": 5}]}).items == [Inner(5)]


class ModelJob(EntryJobType[Model, Model], name="codec_model_job"):
    pass


async def test_pydantic_models_flow_through_a_chain() -> None:
    state = InMemoryStateAdapter()
    client: Client[Any] = Client(state, job_types=[ModelJob], codec=PydanticCodec())
    worker: Worker[Any] = Worker(client, poll_interval=0.05)

    @worker.handler(ModelJob)
    async def handle(attempt: Attempt[ModelJob]) -> None:
        assert isinstance(attempt.input, Model)
        await attempt.complete(
            Model(name=attempt.input.name.upper(), count=attempt.input.count + 1)
        )

    async with client.transaction() as tx:
        chain = await client.start_chain(ModelJob(Model(name="x", count=1)), tx=tx)
        with pytest.raises(JobTypeValidationError) as info:
            await client.start_chain(ModelJob({"name": "x", "count": "NaN"}), tx=tx)  # type: ignore[arg-type]
        assert info.value.code == "invalid_input"
    async with worker:
        assert await client.wait_for_chain(chain, timeout=5, poll_interval=0.05) == Model(
            name="X", count=2
        )
    await client.close()
    await state.close()


@dataclass
class N:
    n: int


class Leaf(EntryJobType[N, N], name="jt_leaf"):
    pass


class Loop(
    EntryJobType[N, N],
    Continues["Loop | Finish"],
    Blockers[tuple[Chain[Leaf], Unpack[tuple[Chain[Leaf], ...]]]],
    name="jt_loop",
):
    pass


class Inherited(Loop, name="jt_inherited"):
    """A subclass of a job type inherits its declaration."""


class Finish(JobType[N, Never], name="jt_finish"):
    pass


class CamelCaseName(EntryJobType[N, N]):
    pass


def test_declarations_are_read_at_runtime() -> None:
    spec = Loop.spec()
    assert spec.input_type is N and spec.output_type is N
    assert spec.continues_to == (Loop, Finish)
    assert [tuple(t.type_name for t in slot) for slot in spec.blockers.fixed] == [("jt_leaf",)]
    assert spec.blockers.rest == (Leaf,)
    assert Loop.entry and not Finish.entry
    assert not Finish.spec().can_complete
    assert CamelCaseName.type_name == "camel_case_name"
    inherited = Inherited.spec()
    assert (inherited.input_type, inherited.continues_to) == (N, (Loop, Finish))
    assert inherited.blockers == spec.blockers


def test_bad_declarations_are_clear_errors() -> None:
    with pytest.raises(UsageError):

        class BadName(EntryJobType[N, N], name="has space"):
            pass

    class NotAJob(EntryJobType[N, N], Continues["int"], name="jt_bad_next"):
        pass

    with pytest.raises(UsageError, match="continuation targets"):
        NotAJob.spec()

    class BadBlockers(EntryJobType[N, N], Blockers[tuple[Leaf]], name="jt_bad_blockers"):
        pass

    with pytest.raises(UsageError, match="Chain"):
        BadBlockers.spec()

    with pytest.raises(UsageError, match="must subclass JobType"):

        class OnlyAMixin(Continues[Leaf], name="jt_only_a_mixin"):
            pass

    with pytest.raises(TypeError):

        class FiveSlots(EntryJobType[N, N, Never, tuple[()], N]):  # type: ignore[type-arg]
            pass

    class Twin(EntryJobType[N, N], name="jt_leaf"):
        pass

    with pytest.raises(DuplicateJobTypeError):
        Client(InMemoryStateAdapter(), job_types=[Leaf, Twin])

    with pytest.raises(UsageError):
        JobType(N(1))  # the base class itself is not a job type
