"""A live dashboard for the browser tests: a store (SQLite or PostgreSQL), a worker running a small
order workflow on it, the dashboard served by uvicorn on a free port (a full one at ``/`` and a
read-only one at ``/ro``), and Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from dashboard_helpers import backend_url
from playwright.async_api import Browser, async_playwright
from queuert import Attempt, Blockers, Chain, Client, Continues, EntryJobType, JobType, Worker
from queuert.backends import open_state_adapter
from queuert_dashboard import create_dashboard
from starlette.applications import Starlette
from starlette.routing import Mount
from typing_extensions import Never

CHROMIUM = os.environ.get("QUEUERT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = os.environ.get("QUEUERT_DASHBOARD_SCREENSHOTS")
"""A directory to save screenshots of every view into (the README's pictures); unset: none."""


class CheckStock(EntryJobType[dict[str, Any], dict[str, Any]], name="stock.check"):
    pass


class Ship(JobType[dict[str, Any], str], name="order.ship"):
    pass


class PlaceOrder(
    EntryJobType[dict[str, Any], Never],
    Continues[Ship],
    Blockers[tuple[Chain[CheckStock], ...]],
    name="order.place",
):
    pass


class SendMail(EntryJobType[dict[str, Any], str], name="mail.send", max_attempts=1):
    pass


@dataclass
class Live:
    """What a browser test works with."""

    url: str
    client: Client[Any]
    browser: Browser
    gate: asyncio.Event
    """Stock checks of a sku starting with ``hold`` wait until this is set."""
    console: list[str] = field(default_factory=list)
    """Every console message and page error of the pages the test opened."""

    async def start(self, job: Any) -> Chain[Any]:
        async with self.client.transaction() as tx:
            return await self.client.start_chain(job, tx=tx)

    async def order(self, sku: str) -> tuple[Chain[Any], Chain[Any]]:
        """An order waiting for its stock check: (order chain, stock chain)."""
        async with self.client.transaction() as tx:
            stock = await self.client.start_chain(CheckStock({"sku": sku}), tx=tx)
            order = await self.client.start_chain(
                PlaceOrder({"sku": sku}, blockers=(stock,)), tx=tx
            )
        return order, stock

    async def page(self, path: str = "/") -> Any:
        page = await self.browser.new_page(viewport={"width": 1100, "height": 720})
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        await page.goto(self.url + path)
        return page

    async def screenshot(self, page: Any, name: str) -> None:
        if SCREENSHOTS:
            await page.screenshot(path=screenshot_path(SCREENSHOTS, name))


def screenshot_path(directory: str, name: str) -> str:
    Path(directory).mkdir(parents=True, exist_ok=True)
    return str(Path(directory) / f"{name}.png")


def build_worker(client: Client[Any], gate: asyncio.Event) -> Worker[Any]:
    worker: Worker[Any] = Worker(client, concurrency=4, poll_interval=0.2, shutdown_timeout=5)

    @worker.handler(CheckStock)
    async def check(attempt: Attempt[CheckStock]) -> dict[str, Any]:
        if str(attempt.input["sku"]).startswith("hold"):
            await gate.wait()
        return {"sku": attempt.input["sku"], "count": 3}

    @worker.handler(PlaceOrder)
    async def place(attempt: Attempt[PlaceOrder]) -> Ship:
        return Ship({"sku": attempt.input["sku"]})

    @worker.handler(Ship)
    async def ship(attempt: Attempt[Ship]) -> str:
        return f"shipped {attempt.input['sku']}"

    @worker.handler(SendMail)
    async def send(attempt: Attempt[SendMail]) -> str:
        if attempt.input.get("fail"):
            raise ConnectionError(f"mail server refused {attempt.input['to']}")
        return "sent"

    return worker


def free_socket() -> socket.socket:
    """A listening socket on a free port (connections queue until the server accepts them)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    return sock


@asynccontextmanager
async def live_dashboard(backend: str, tmp_path: Path) -> AsyncIterator[Live]:
    url, drop = backend_url(backend, tmp_path)
    gate = asyncio.Event()
    state = await open_state_adapter(url)
    try:
        await state.migrate()
        async with Client(state) as client:
            worker = build_worker(client, gate)
            app = Starlette(
                routes=[
                    Mount("/ro", app=create_dashboard(client, read_only=True, refresh_seconds=0.5)),
                    Mount("/", app=create_dashboard(client, refresh_seconds=0.5)),
                ]
            )
            sock = free_socket()
            port = sock.getsockname()[1]
            server = uvicorn.Server(
                uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
            )
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            try:
                async with worker, async_playwright() as playwright:
                    browser = await playwright.chromium.launch(
                        executable_path=CHROMIUM, args=CHROMIUM_ARGS
                    )
                    try:
                        yield Live(f"http://127.0.0.1:{port}", client, browser, gate)
                    finally:
                        gate.set()
                        await browser.close()
            finally:
                server.should_exit = True
                await serving
                sock.close()
    finally:
        await state.close()
        if drop is not None:
            await drop()
