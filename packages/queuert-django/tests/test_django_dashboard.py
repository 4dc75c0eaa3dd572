"""The dashboard mounted in the test project's ``asgi.py`` (``with_dashboard`` and ``staff_only``)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from queuert_django.connections import open_client

try:
    import httpx2
except ImportError:  # httpx2 needs Python 3.11; 3.10 has httpx
    import httpx as httpx2  # type: ignore[no-redef]


def _session_cookie(alias: str, *, staff: bool) -> dict[str, str]:
    """A logged-in session of a new user, as Django's login view would make it."""
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client as DjangoClient

    user = User.objects.create_user(f"u-{uuid.uuid4().hex[:8]}", password="x", is_staff=staff)
    browser = DjangoClient()
    browser.force_login(user)
    return {settings.SESSION_COOKIE_NAME: browser.cookies[settings.SESSION_COOKIE_NAME].value}


async def _get(app: Any, path: str, cookies: dict[str, str] | None = None) -> Any:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(
        transport=transport, base_url="http://shop.test", cookies=cookies
    ) as http:
        return await http.get(path)


@pytest.fixture
def application(alias: str) -> Any:
    """The project's ASGI application; each test closes its dashboard in the loop that opened it."""
    from testproject.asgi import application

    return application


def test_staff_see_the_dashboard_under_its_path_with_their_chains(
    application: Any, alias: str
) -> None:
    from shop.jobs import OrderRef, SendReceipt

    reference = f"o-{uuid.uuid4().hex[:8]}"
    cookies = _session_cookie(alias, staff=True)

    async def scenario() -> tuple[str, Any, Any]:
        async with open_client() as client:
            chain = await client.start_chain(SendReceipt(OrderRef(reference)))
        try:
            overview = await _get(application, "/admin/queue/", cookies)
            chains = await _get(application, f"/admin/queue/chains?q={chain.id}", cookies)
        finally:
            await application.close()
        return chain.id, overview, chains

    chain_id, overview, chains = asyncio.run(scenario())
    assert overview.status_code == 200
    assert 'href="/admin/queue/chains' in overview.text  # its links follow the mount path
    assert chains.status_code == 200
    assert chain_id in chains.text
    assert "send_receipt" in chains.text


def test_anonymous_visitors_are_sent_to_the_login_page_and_other_users_refused(
    application: Any, alias: str
) -> None:
    cookies = _session_cookie(alias, staff=False)

    async def scenario() -> tuple[Any, Any]:
        try:
            return (
                await _get(application, "/admin/queue/chains"),
                await _get(application, "/admin/queue/", cookies),
            )
        finally:
            await application.close()

    anonymous, not_staff = asyncio.run(scenario())
    assert anonymous.status_code == 302
    assert anonymous.headers["location"] == "/login/?next=%2Fadmin%2Fqueue%2Fchains"
    assert not_staff.status_code == 403


def test_other_paths_are_django_s(application: Any) -> None:
    async def scenario() -> tuple[Any, Any]:
        try:
            return (
                await _get(application, "/admin/queuette/"),
                await _get(application, "/admin/queue"),
            )
        finally:
            await application.close()

    response, bare = asyncio.run(scenario())
    assert response.status_code == 404
    assert "queuert" not in response.text
    assert bare.status_code == 308
    assert bare.headers["location"] == "/admin/queue/"


def test_the_lifespan_opens_and_closes_the_dashboard_s_client(alias: str) -> None:
    from django.core.asgi import get_asgi_application
    from queuert_django.dashboard import with_dashboard

    app = with_dashboard(get_asgi_application(), "/queue", auth=None)
    sent: list[str] = []

    async def scenario() -> None:
        messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        await messages.put({"type": "lifespan.startup"})
        await messages.put({"type": "lifespan.shutdown"})

        async def receive() -> dict[str, str]:
            return await messages.get()

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])
            if message["type"] == "lifespan.startup.complete":
                assert app._dashboard is not None  # opened at startup

        await asyncio.wait_for(app({"type": "lifespan"}, receive, send), 30)

    asyncio.run(scenario())
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert app._dashboard is None
