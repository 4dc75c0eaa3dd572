"""Codecs turn typed inputs and outputs into JSON and back (runtime validation is pluggable).

The client encodes every input before it writes a job and every output before it completes one; the
worker and the read methods decode stored JSON with the declared type. An encoder refuses anything that
is not JSON-serialisable, naming the offending path, before anything is written.

* :class:`DefaultCodec` (no dependencies): dataclasses (nested too), ``TypedDict`` and plain JSON
  types. It checks the outer type of dataclass values and that everything is JSON; it does not
  validate field types.
* :class:`queuert.pydantic.PydanticCodec`: full validation of pydantic models, dataclasses and
  ``TypedDict`` with pydantic's ``TypeAdapter``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import typing
from collections.abc import Mapping, Sequence
from functools import lru_cache
from operator import attrgetter
from typing import Any, Protocol, runtime_checkable

from queuert.errors import NotJsonError
from queuert.json import JsonValue, ensure_json

__all__ = ["Codec", "CodecError", "DefaultCodec"]


class CodecError(ValueError):
    """A value does not fit its declared type (raised by codecs; the client wraps it)."""


@runtime_checkable
class Codec(Protocol):
    def encode(self, tp: Any, value: Any) -> JsonValue:
        """Validate ``value`` against ``tp`` and return its JSON form. Raise :class:`CodecError` or
        :class:`~queuert.errors.NotJsonError`."""
        ...

    def decode(self, tp: Any, data: JsonValue) -> Any:
        """Build a value of ``tp`` from stored JSON. Raise :class:`CodecError` if it does not fit."""
        ...


_DATACLASS = "__dataclass_fields__"
"""What ``dataclasses.is_dataclass`` looks for; for a class, ``hasattr(tp, _DATACLASS)`` is that
check without its two extra calls (hot: every encoded output and decoded input)."""


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__total__")


@lru_cache(maxsize=1024)
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


class DefaultCodec:
    """Dataclasses, TypedDicts and plain JSON values, without extra dependencies."""

    def encode(self, tp: Any, value: Any) -> JsonValue:
        if isinstance(tp, type) and hasattr(tp, _DATACLASS) and not isinstance(value, tp):
            raise CodecError(f"expected {tp.__name__}, got {type(value).__name__}")
        try:
            return _plain_to_json(value)
        except _NotPlain:
            # enums, other mappings, subclasses of the JSON types, or a value to refuse: the general
            # walk converts the first and names the path of the second
            return _to_json(value, "$")

    def encode_many(self, tp: Any, values: Sequence[Any]) -> list[JsonValue] | None:
        """:meth:`encode` of each of ``values`` (a batch of one declared type) in one call, or
        ``None`` when one of them needs :meth:`encode`'s general walk or an error of it: the
        caller then encodes them one by one (and raises the first value's error). Found plain,
        a dataclass's fields are read in one C call per value rather than a step per field."""
        if not (isinstance(tp, type) and hasattr(tp, _DATACLASS)):
            try:
                return [_plain_to_json(value) for value in values]
            except _NotPlain:
                return None
        names = _dataclass_fields(tp)
        if names is None:
            return None
        out: list[JsonValue] = []
        append = out.append
        if len(names) == 1:
            (name,) = names
            get = attrgetter(name)
            for value in values:
                if type(value) is not tp:  # a subclass or another type: encode()'s checks
                    return None
                item = get(value)
                kind = type(item)
                if kind is str or kind is int or kind is bool or item is None:
                    append({name: item})
                else:
                    try:
                        append(_plain_to_json(value))
                    except _NotPlain:
                        return None
            return out
        get = attrgetter(*names)
        for value in values:
            if type(value) is not tp:
                return None
            data = dict(zip(names, get(value), strict=True))
            if not _SCALAR_TYPES.issuperset(map(type, data.values())):
                try:
                    data = _plain_to_json(value)  # type: ignore[assignment]
                except _NotPlain:
                    return None
            append(data)
        return out

    def decode(self, tp: Any, data: JsonValue) -> Any:
        try:
            return self._build(tp, data)
        except NotJsonError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise CodecError(
                f"stored value does not fit {getattr(tp, '__name__', tp)}: {exc}"
            ) from exc

    def _build(self, tp: Any, data: Any) -> Any:
        if tp is Any or tp is None or data is None:
            return data
        if isinstance(tp, type) and hasattr(tp, _DATACLASS):
            if not isinstance(data, dict):
                raise CodecError(f"expected an object for {tp.__name__}, got {type(data).__name__}")
            kwargs = {}
            for name, hint, build in _dataclass_plan(tp):
                if name in data:
                    kwargs[name] = self._build(hint, data[name]) if build else data[name]
            return tp(**kwargs)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return tp(data)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (list, typing.List) and args and isinstance(data, list):  # noqa: UP006
            return [self._build(args[0], v) for v in data]
        if origin is tuple and args and isinstance(data, list):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(self._build(args[0], v) for v in data)
            return tuple(self._build(a, v) for a, v in zip(args, data, strict=False))
        if origin in (dict, typing.Dict) and len(args) == 2 and isinstance(data, dict):  # noqa: UP006
            return {k: self._build(args[1], v) for k, v in data.items()}
        if args and _is_union(tp):
            for arg in args:
                if arg is type(None):
                    continue
                if dataclasses.is_dataclass(arg) and isinstance(data, dict):
                    try:
                        return self._build(arg, data)
                    except (TypeError, CodecError):
                        continue
            return data
        return data


@lru_cache(maxsize=1024)
def _dataclass_plan(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """Each field of a dataclass: its name, its declared type, and whether a stored value needs
    building into that type (``False``: :meth:`DefaultCodec._build` would return it unchanged)."""
    hints = _field_types(cls)
    plan = []
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name, Any)
        plan.append((f.name, hint, not _kept_as_is(hint)))
    return tuple(plan)


def _kept_as_is(tp: Any) -> bool:
    """Whether :meth:`DefaultCodec._build` returns any value for ``tp`` unchanged: not a dataclass,
    an enum, a typed list, tuple or dict, or a union with a dataclass member."""
    if tp is Any or tp is None:
        return True
    if dataclasses.is_dataclass(tp) or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        return False
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (list, typing.List, tuple, dict, typing.Dict) and args:  # noqa: UP006
        return False
    return not (args and _is_union(tp) and any(dataclasses.is_dataclass(a) for a in args))


_SCALARS = (str, int, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)
"""The exact types of a value that is its own JSON (one set test for a whole dataclass's fields)."""


class _NotPlain(Exception):
    pass


def _plain_to_json(value: Any) -> JsonValue:
    """The common case of :func:`_to_json` without building paths: exact built-in JSON types and
    dataclasses of them. Raises :class:`_NotPlain` for anything else."""
    kind: type = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value  # type: ignore[no-any-return]
    names = _dataclass_fields(kind)
    out: dict[str, JsonValue]
    if names is not None:
        # a field of a scalar type is taken here, without a call per field
        out = {}
        for name in names:
            item = getattr(value, name)
            kind = type(item)
            out[name] = (
                item
                if kind is str or kind is int or kind is bool or item is None
                else _plain_to_json(item)
            )
        return out
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            kind = type(item)
            out[key] = (
                item
                if kind is str or kind is int or kind is bool or item is None
                else _plain_to_json(item)
            )
        return out
    if kind is list or kind is tuple:
        return [_plain_to_json(item) for item in value]
    if kind is float and math.isfinite(value):
        return value  # type: ignore[no-any-return]
    raise _NotPlain


@lru_cache(maxsize=1024)
def _dataclass_fields(kind: type) -> tuple[str, ...] | None:
    """The field names of a dataclass type, ``None`` for any other type (and for a dataclass that
    subclasses a JSON type: :func:`_to_json` converts those as the JSON type)."""
    if dataclasses.is_dataclass(kind) and not issubclass(
        kind, (str, int, float, dict, list, tuple)
    ):
        return tuple(f.name for f in dataclasses.fields(kind))
    return None


def _to_json(value: Any, path: str) -> JsonValue:
    """Convert dataclasses and enums to plain JSON and check it is JSON, in one pass."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, float):
        return ensure_json(value, path)
    if isinstance(value, dict):
        out: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotJsonError(f"{path}.<key>", key, "object keys must be strings")
            out[key] = _to_json(item, f"{path}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_to_json(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _to_json(getattr(value, f.name), f"{path}.{f.name}")
            for f in _fields(type(value))
        }
    if isinstance(value, enum.Enum):
        return _to_json(value.value, path)
    if isinstance(value, Mapping):
        return _to_json(dict(value), path)
    return ensure_json(value, path)  # raises NotJsonError naming the path


@lru_cache(maxsize=1024)
def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(cls)


def _is_union(tp: Any) -> bool:
    import types

    return typing.get_origin(tp) is typing.Union or isinstance(tp, types.UnionType)
