"""An ``Opening`` is awaited for the adapter, or used in ``async with`` to close it on exit; adapters
opened by URL (``queuert.backends.open_state_adapter``) work both ways."""

from __future__ import annotations

import pytest
from queuert import InMemoryStateAdapter, StateAdapterClosedError, UsageError
from queuert.backends import open_state_adapter
from queuert.opening import Opening


class Resource:
    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


async def _open(resource: Resource) -> Resource:
    return resource


async def test_awaiting_gives_the_adapter_and_leaves_it_open() -> None:
    resource = Resource()
    assert await Opening(lambda: _open(resource)) is resource
    assert resource.closed == 0


async def test_async_with_closes_the_adapter_on_exit_and_on_error() -> None:
    resource = Resource()
    async with Opening(lambda: _open(resource)) as opened:
        assert opened is resource
        assert resource.closed == 0
    assert resource.closed == 1
    again = Resource()
    with pytest.raises(LookupError):
        async with Opening(lambda: _open(again)):
            raise LookupError("the block fails")
    assert again.closed == 1


async def test_an_opening_opens_once() -> None:
    opening = Opening(lambda: _open(Resource()))
    await opening
    with pytest.raises(UsageError):
        await opening


async def test_a_failed_open_closes_nothing() -> None:
    async def fail() -> Resource:
        raise ConnectionError("no server")

    with pytest.raises(ConnectionError):
        async with Opening(fail):
            pytest.fail("the block must not run")


async def test_open_state_adapter_by_url_either_way() -> None:
    async with open_state_adapter("memory://") as state:
        assert isinstance(state, InMemoryStateAdapter)
        await state.migrate()
    with pytest.raises(StateAdapterClosedError):
        await state.migrate()
    awaited = await open_state_adapter("memory://")
    await awaited.migrate()
    await awaited.close()
