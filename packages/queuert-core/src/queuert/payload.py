"""What a stored value (a job's input or output) may be: the checks every value passes after its codec
turned it into JSON and before any state adapter sees it, so that every backend stores it exactly and
every worker can read it back.

A value is refused, with nothing written, when it

* has a string (or object key) containing NUL or a lone surrogate: neither is valid in the UTF-8 text
  and JSON types of every database (PostgreSQL's ``jsonb`` rejects NUL, no driver encodes a lone
  surrogate), so one backend would fail with a driver error and another would store something else;
* is nested too deeply for Python's JSON encoder, or has an integer longer than Python's limit on
  integer-to-string conversion (4,300 digits by default, Python 3.11 and newer): the worker could not
  read it back;
  these raise :class:`~queuert.errors.NotJsonError` naming the path of the offending value;
* is larger, encoded as compact UTF-8 JSON, than the client's ``max_payload_bytes`` (1 MiB by
  default; ``None`` for no limit): :class:`~queuert.errors.PayloadTooLargeError`. Store large data
  elsewhere and put its reference in the job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from queuert.codec import Codec
from queuert.errors import NotJsonError, PayloadTooLargeError, UsageError
from queuert.json import JsonValue, dumps, dumps_chunks

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "Payloads",
    "check_payload",
    "checked_text",
    "storable_text",
]

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
"""The default limit on one encoded input or output: 1 MiB."""

_ESCAPED_NUL = "\\u0000"  # how the encoder writes a NUL character inside a string

Role = Literal["input", "output"]


def check_payload(
    value: JsonValue, *, max_bytes: int | None, what: Role = "input", type_name: str = "?"
) -> None:
    """Raise :class:`NotJsonError` or :class:`PayloadTooLargeError` if ``value`` may not be stored
    (see the module docstring); return quietly otherwise."""
    checked_text(value, max_bytes=max_bytes, what=what, type_name=type_name)


def checked_text(
    value: JsonValue, *, max_bytes: int | None, what: Role = "input", type_name: str = "?"
) -> str:
    """:func:`check_payload`, returning the compact JSON text it checked (``dumps(value)``)."""
    try:
        text = dumps(value)
    except (RecursionError, ValueError):
        _locate(value, "$", 0)
        raise NotJsonError("$", value, "this value cannot be encoded as JSON") from None
    if text.isascii():
        size = len(text)
        suspicious = _ESCAPED_NUL in text
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            size = 0
            suspicious = True
        else:
            suspicious = _ESCAPED_NUL in text
    if suspicious:
        _locate(value, "$", 0)  # raises if a string holds NUL or a lone surrogate
    if max_bytes is not None and size > max_bytes:
        raise PayloadTooLargeError(what, type_name, size, max_bytes)
    return text


_MAX_DEPTH = 200
"""Deeper values are refused when the encoder cannot encode them; this is only where the walk that
names the offending path stops."""


def _locate(value: object, path: str, depth: int) -> None:
    """Raise :class:`NotJsonError` at the first value under ``path`` that may not be stored."""
    if depth > _MAX_DEPTH:
        raise NotJsonError(path, value, f"nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, bool) or value is None or isinstance(value, float):
        return
    elif isinstance(value, int):
        try:
            str(value)
        except ValueError:
            raise NotJsonError(
                path, value, "an integer too long to convert to text (sys.get_int_max_str_digits)"
            ) from None
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _locate(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{path}.<key {key!r}>")
            _locate(item, f"{path}.{key}", depth + 1)


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise NotJsonError(path, text, "a string must not contain NUL (\\x00)")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise NotJsonError(
                path, text, "a string must be valid Unicode (it has a lone surrogate)"
            ) from None


class Payloads:
    """A codec and the checks above: what the client calls to turn an input or output into the
    JSON it stores."""

    __slots__ = ("_many", "codec", "max_bytes")

    def __init__(self, codec: Codec, max_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1
        ):
            raise UsageError(f"max_payload_bytes must be a positive int or None, not {max_bytes!r}")
        self.codec = codec
        self.max_bytes = max_bytes
        self._many: Callable[[Any, Sequence[Any]], list[JsonValue] | None] | None = getattr(
            codec, "encode_many", None
        )
        """The codec's encoder of a batch of one type, if it has one (see
        :meth:`~queuert.codec.DefaultCodec.encode_many`)."""

    def encode_texts(
        self, tp: Any, values: Sequence[Any]
    ) -> tuple[list[JsonValue], list[str]] | None:
        """:meth:`encode_text` of each of ``values`` (a batch of inputs of one declared type), in
        one pass where the codec encodes batches (``encode_many``) and every value is plain, and
        the checks made once on the batch's texts together; ``None`` when a value needs more (the
        caller then encodes one by one, which raises the first value's error)."""
        many = self._many
        if many is None or dumps_chunks is None:
            return None
        try:
            datas = many(tp, values)
            if datas is None:
                return None
            join = "".join
            chunks = dumps_chunks
            texts = [
                join(chunks(data, 0)) if type(data) is not str else dumps(data) for data in datas
            ]
        except (RecursionError, ValueError):
            return None  # encode_text names what cannot be encoded
        # a text of the batch fails a check only if the texts together do: ASCII, no escaped
        # NUL (a JSON text never ends in a backslash, so none is made across two), each within
        # the limit
        together = join(texts)
        max_bytes = self.max_bytes
        if (
            together.isascii()
            and _ESCAPED_NUL not in together
            and (
                max_bytes is None or len(together) <= max_bytes or max(map(len, texts)) <= max_bytes
            )
        ):
            return datas, texts
        return None

    def encode(self, tp: Any, value: Any, *, what: Role, type_name: str) -> JsonValue:
        """``value`` as stored JSON; the codec's errors propagate, then the checks above apply."""
        return self.encode_text(tp, value, what=what, type_name=type_name)[0]

    def encode_text(
        self, tp: Any, value: Any, *, what: Role, type_name: str
    ) -> tuple[JsonValue, str]:
        """:meth:`encode`, and the value's compact JSON text (``queuert.json.dumps``), encoded once
        for the checks and handed on to the state adapter."""
        try:
            data = self.codec.encode(tp, value)
        except RecursionError:
            raise NotJsonError("$", value, "nested too deeply to encode") from None
        # the common case of checked_text here, without its call: ASCII text (its length is its
        # size) without an escaped NUL, within the limit
        try:
            # dumps(data), inlined where it can be (hot: once per job started)
            if dumps_chunks is not None and type(data) is not str:
                text = "".join(dumps_chunks(data, 0))
            else:
                text = dumps(data)
        except (RecursionError, ValueError):
            pass  # checked_text names what cannot be encoded
        else:
            max_bytes = self.max_bytes
            if (
                text.isascii()
                and _ESCAPED_NUL not in text
                and (max_bytes is None or len(text) <= max_bytes)
            ):
                return data, text
        return data, checked_text(data, max_bytes=self.max_bytes, what=what, type_name=type_name)


def storable_text(text: str) -> str:
    """``text`` (an error message or traceback) as every backend can store it: NUL and lone
    surrogates written as backslash escapes, everything else unchanged."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
