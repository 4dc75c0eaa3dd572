"""A codec that validates inputs and outputs with pydantic (``pip install queuert-core[pydantic]``).

Pass ``codec=PydanticCodec()`` to the client: inputs and outputs declared as pydantic models,
dataclasses or ``TypedDict`` are then fully validated when a job is created or completed, and stored
JSON is validated again when it is read back (schema drift shows up as a clear error).
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from queuert.codec import CodecError
from queuert.json import JsonValue, ensure_json

__all__ = ["PydanticCodec"]


class PydanticCodec:
    def __init__(self) -> None:
        self._adapters: dict[Any, TypeAdapter[Any]] = {}

    def _adapter(self, tp: Any) -> TypeAdapter[Any]:
        try:
            return self._adapters[tp]
        except KeyError:
            adapter: TypeAdapter[Any] = TypeAdapter(tp)
            self._adapters[tp] = adapter
            return adapter
        except TypeError:  # unhashable type expression
            return TypeAdapter(tp)

    def encode(self, tp: Any, value: Any) -> JsonValue:
        adapter = self._adapter(tp)
        try:
            validated = adapter.validate_python(value)
            return ensure_json(adapter.dump_python(validated, mode="json"))
        except ValidationError as exc:
            raise CodecError(str(exc)) from exc

    def decode(self, tp: Any, data: JsonValue) -> Any:
        try:
            return self._adapter(tp).validate_python(data)
        except ValidationError as exc:
            raise CodecError(str(exc)) from exc
