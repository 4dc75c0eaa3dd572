"""Find state adapters by URL scheme (``sqlite:///jobs.db``, ``postgresql://...``, ``memory://``).

Adapter distributions register a factory ``from_url(url)`` returning an awaitable of the adapter
(an :class:`~queuert.opening.Opening`, or a coroutine) under the entry-point group
``queuert.state_adapters`` with the scheme as name; the core imports none of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from queuert.errors import UsageError
from queuert.in_memory import InMemoryStateAdapter
from queuert.opening import Opening
from queuert.state import StateAdapter

__all__ = ["available_schemes", "open_state_adapter"]

GROUP = "queuert.state_adapters"

_Factory = Callable[[str], Awaitable[StateAdapter[Any]]]
_factories: dict[str, _Factory] = {}
"""Factories already loaded, by scheme: the entry-point scan reads every installed distribution's
metadata from disk, so it runs once per scheme and process, not on every call."""


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available_schemes() -> list[str]:
    return sorted({"memory", *_entry_points()})


def open_state_adapter(url: str) -> Opening[StateAdapter[Any]]:
    """The state adapter ``url`` names: ``await`` it, or ``async with`` it to close it on exit."""

    async def open() -> StateAdapter[Any]:
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "memory":
            return InMemoryStateAdapter()
        factory = _factories.get(scheme)
        if factory is None:
            entry = _entry_points().get(scheme)
            if entry is None:
                raise UsageError(
                    f"no state adapter for {scheme or url!r}; installed: "
                    f"{', '.join(available_schemes())} (install queuert-sqlite, queuert-postgres, ...)"
                )
            factory = _factories[scheme] = cast(_Factory, entry.load())
        return await factory(url)

    return Opening(open)
