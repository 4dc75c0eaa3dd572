"""JSON values: the only thing queuert stores as job input and output."""

from __future__ import annotations

import json as _json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

from queuert.errors import NotJsonError

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"

__all__ = ["JsonValue", "UndecodableValue", "dumps", "ensure_json", "loads", "loads_stored"]


def ensure_json(value: object, path: str = "$") -> JsonValue:
    """Return ``value`` if it is plain JSON data, else raise :class:`NotJsonError` naming the path.

    Accepts ``None``, ``bool``, ``int``, finite ``float``, ``str``, lists/tuples of JSON and dicts with ``str``
    keys. Refuses everything else (datetimes, sets, bytes, class instances, NaN, infinities), so a value that
    is accepted reads back equal after a round trip through the store. Tuples come back as lists.
    Containers are copied: the result shares no list or dict with ``value``.
    """
    try:
        return _plain(value)
    except _NotPlain:
        # Subclasses of the JSON types (enums on int or str, OrderedDict, other mappings), or a value
        # to refuse: the general walk accepts the first and names the path of the second.
        return _walk(value, path)


class _NotPlain(Exception):
    pass


def _plain(value: object) -> JsonValue:
    """The common case, without building paths: only the exact built-in types (checked with ``is``)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value  # type: ignore[return-value]
    if kind is dict:
        out: dict[str, JsonValue] = {}
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                raise _NotPlain
            item_kind = type(item)
            if item_kind is str or item_kind is int or item_kind is bool or item is None:
                out[key] = item
            else:
                out[key] = _plain(item)
        return out
    if kind is list or kind is tuple:
        return [_plain(item) for item in value]  # type: ignore[attr-defined]
    if kind is float and math.isfinite(value):  # type: ignore[arg-type]
        return value  # type: ignore[return-value]
    raise _NotPlain


def _walk(value: object, path: str) -> JsonValue:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotJsonError(path, value, "NaN and infinities are not JSON")
        return value
    if isinstance(value, (list, tuple)):
        return [_walk(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotJsonError(f"{path}.<key>", key, "object keys must be strings")
            out[key] = _walk(item, f"{path}.{key}")
        return out
    raise NotJsonError(path, value, "only None, bool, int, float, str, list and dict are JSON")


_encode = _json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_decode = _json.JSONDecoder().decode


_c_encode: Any = None
try:
    from json.encoder import (  # type: ignore[attr-defined]
        c_make_encoder,
        encode_basestring,
    )

    if c_make_encoder is not None:
        # The C encoder that ``_encode`` builds on every call, built once: without a circular
        # check (a value that refers to itself fails with RecursionError instead of ValueError).
        _c_encode = c_make_encoder(
            None,
            _json.JSONEncoder().default,
            encode_basestring,
            None,
            ":",
            ",",
            False,
            False,
            False,
        )
        if "".join(_c_encode({"a": [1, "\u00e9"]}, 0)) != '{"a":[1,"\u00e9"]}':
            _c_encode = None  # pragma: no cover - an interpreter whose encoder differs
except (ImportError, TypeError):  # pragma: no cover - CPython ships the C encoder
    _c_encode = None


dumps_chunks: Any = _c_encode
"""The C encoder :func:`dumps` joins the pieces of (``None`` where there is none): for a value that
is not a ``str``, ``"".join(dumps_chunks(value, 0))`` is ``dumps(value)`` without its call."""


def dumps(value: JsonValue) -> str:
    """Compact JSON text of an already checked value (one shared encoder: ``json.dumps`` with
    options builds a new one per call)."""
    if _c_encode is not None and type(value) is not str:
        return "".join(_c_encode(value, 0))
    return _encode(value)


_scan = _json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""The decoder's scanner alone: :func:`loads` of a text with no surrounding whitespace (what
:func:`dumps` writes) skips ``JSONDecoder.decode``'s two whitespace matches."""


def loads(text: str | bytes) -> JsonValue:
    if type(text) is str:
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            pass  # whitespace first, or not JSON: the full decoder reads it or says why
        else:
            if end == len(text):
                parsed: JsonValue = value  # no cast(): a function call on every read
                return parsed
        return cast(JsonValue, _decode(text))
    if isinstance(text, (bytes, bytearray)):
        return cast(JsonValue, _json.loads(text))
    return cast(JsonValue, _decode(text))


def _deep_copy(value: Any) -> JsonValue:
    """Copy a JSON value (used by stores that keep Python objects, so callers cannot alias them)."""
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    return cast(JsonValue, value)


copy_json = _deep_copy


@dataclass(frozen=True)
class UndecodableValue:
    """A stored input or output that cannot be read: not valid JSON (edited by hand, written by
    something else), or JSON that no longer fits its job type's declared type.

    Reads (``get_job``, ``list_jobs``, ``get_chain``, ``list_chains``...) return this in place of the
    value instead of failing the whole page; ``raw`` is what is stored (the text when it is not JSON)
    and ``reason`` says what is wrong. A worker that claims such a job fails it at once, without
    retrying, with the reason as its error.
    """

    raw: object
    reason: str


def loads_stored(text: str | bytes) -> JsonValue | UndecodableValue:
    """A stored JSON text as its value, or an :class:`UndecodableValue` when it does not parse (what
    every state adapter uses to read stored inputs and outputs: a bad row never fails a read)."""
    try:
        return loads(text)
    except (ValueError, RecursionError) as exc:
        raw = text if isinstance(text, str) else bytes(text).decode("utf-8", "replace")
        return UndecodableValue(raw, f"the stored text is not valid JSON: {exc}")
