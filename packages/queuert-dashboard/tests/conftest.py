"""Fixtures of the dashboard tests: a dashboard over each state adapter (in-memory, SQLite in a temp
file, PostgreSQL in a schema of its own), driven by Starlette's TestClient.

The TestClient runs the application on an event loop in a thread of its own, so the state adapter
is opened on that loop too (through the client's portal) and every setup step runs there."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import BACKENDS, Site, Swappable, backend_url
from queuert import Client
from queuert.backends import open_state_adapter
from starlette.testclient import TestClient


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    with open_site(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Iterator[Site]:
    """A dashboard over SQLite only: its file can be edited by hand (``tmp_path / "dashboard.db"``)."""
    with open_site("sqlite", tmp_path) as opened:
        yield opened


@contextmanager
def open_site(backend: str, tmp_path: Path) -> Iterator[Site]:
    url, drop = backend_url(backend, tmp_path)
    swappable = Swappable()
    with TestClient(swappable, base_url="http://dashboard.test") as http:
        portal = http.portal
        assert portal is not None

        async def open_client() -> Client[Any]:
            state = await open_state_adapter(url)
            await state.migrate()
            return Client(state)

        client = portal.call(open_client)
        try:
            yield Site(http, client, swappable)
        finally:

            async def close() -> None:
                await client.close()
                await client.state.close()
                if drop is not None:
                    await drop()

            portal.call(close)
