"""A codec that validates inputs and outputs with pydantic (``pip install queuert-core[pydantic]``).

Pass ``codec=PydanticCodec()`` to the client: inputs and outputs declared as pydantic models,
dataclasses or ``TypedDict`` are then fully validated when a job is created or completed, and stored
JSON is validated again when it is read back (schema drift shows up as a clear error).
"""

from __future__ import annotations

from typing import Any

from pydantic import PydanticUserError, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

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
            pass
        except TypeError:  # unhashable type expression: not cached
            return self._build(tp)
        adapter = self._build(tp)
        self._adapters[tp] = adapter
        return adapter

    @staticmethod
    def _build(tp: Any) -> TypeAdapter[Any]:
        try:
            return TypeAdapter(tp)
        except PydanticUserError as exc:  # e.g. typing.TypedDict on Python < 3.12
            raise CodecError(f"pydantic cannot handle {tp!r}: {exc}") from exc

    def encode(self, tp: Any, value: Any) -> JsonValue:
        """Serialise, then validate the serialised form (instances built without validation, such
        as ``model_construct`` or a dataclass given a wrong field type, are checked too), then
        store the validated form."""
        adapter = self._adapter(tp)
        try:
            dumped = adapter.dump_python(value, mode="json", warnings=False)
            validated = adapter.validate_python(dumped)
            return ensure_json(adapter.dump_python(validated, mode="json"))
        except (ValidationError, PydanticSerializationError) as exc:
            raise CodecError(str(exc)) from exc

    def decode(self, tp: Any, data: JsonValue) -> Any:
        try:
            return self._adapter(tp).validate_python(data)
        except ValidationError as exc:
            raise CodecError(str(exc)) from exc
