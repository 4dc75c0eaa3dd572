"""Faster ``__init__`` for frozen dataclasses that are built on hot paths.

A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__``, which
costs about as much as the rest of a job's bookkeeping put together (9 us for a 23-field job here,
against 0.5 us for one ``__dict__`` update). :func:`fast_init` replaces it with an equivalent
``__init__`` (same parameters, defaults and order) that fills ``__dict__`` in one call. Instances stay
frozen: assignment after construction still raises. :func:`from_fields` skips ``__init__`` altogether
where a caller has every field at hand.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T", bound=type[Any])
C = TypeVar("C")


def fast_init(cls: T) -> T:
    """Class decorator, applied after ``@dataclass(frozen=True)``."""
    fields = dataclasses.fields(cls)
    params: list[str] = []
    namespace: dict[str, Any] = {}
    for field in fields:
        if field.default_factory is not dataclasses.MISSING:
            raise TypeError(
                f"{cls.__name__}.{field.name}: fast_init does not support default_factory"
            )
        if field.default is dataclasses.MISSING:
            params.append(field.name)
        else:
            namespace[f"_default_{field.name}"] = field.default
            params.append(f"{field.name}=_default_{field.name}")
    assignments = ", ".join(f"{f.name}={f.name}" for f in fields)
    source = f"def __init__(self, {', '.join(params)}):\n    self.__dict__.update({assignments})\n"
    exec(source, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init
    return cls


def from_fields(cls: type[C], fields: dict[str, Any]) -> C:
    """An instance of the frozen dataclass ``cls`` whose ``__dict__`` is ``fields``, without calling
    ``__init__``: for hot paths that already hold every field in a dict. A call with twenty keyword
    arguments costs more than building the dict itself; ``fields`` must name every field, in
    declaration order, and nothing else (the tests of each caller check that)."""
    instance = blank(cls)
    set_field(instance, "__dict__", fields)
    return instance


blank = object.__new__
"""``blank(cls)``: an instance of ``cls`` without ``__init__``."""

set_field = object.__setattr__
"""``set_field(instance, name, value)`` past a frozen dataclass's ``__setattr__``. The hottest
paths inline :func:`from_fields` as ``set_field(instance := blank(cls), "__dict__", fields)``: two
calls into C and none of Python's."""
