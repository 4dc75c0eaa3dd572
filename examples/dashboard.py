"""The dashboard, mounted under ``/admin/queue`` of your own Starlette application, behind HTTP basic
auth, with a worker running beside it.

    uv run python -m examples.dashboard
    # then open http://127.0.0.1:8000/admin/queue/ and log in as ops / change-me

``build_app`` is all it takes: ``create_dashboard(client, auth=...)`` mounted under a path. The
client is opened before the application serves and closed after it.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
from dataclasses import dataclass
from typing import Any

from queuert import Attempt, Client, EntryJobType, InMemoryStateAdapter, Worker
from queuert_dashboard import create_dashboard
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

USER, PASSWORD = "ops", "change-me"  # read them from your secrets in a real application
EXPECTED = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@dataclass
class Signup:
    email: str


class SendWelcome(EntryJobType[Signup, str]):
    pass


def basic_auth(request: Request) -> bool | Response:
    """Allow requests with the right credentials; ask the browser for them otherwise."""
    given = request.headers.get("authorization", "")
    if hmac.compare_digest(given.encode(), EXPECTED.encode()):
        return True
    return PlainTextResponse(
        "login required", status_code=401, headers={"WWW-Authenticate": 'Basic realm="queue"'}
    )


async def home(request: Request) -> Response:
    return PlainTextResponse("your application; the queue is at /admin/queue/")


def build_app(client: Client[Any]) -> Starlette:
    return Starlette(
        routes=[
            Route("/", home),
            Mount("/admin/queue", app=create_dashboard(client, auth=basic_auth)),
        ]
    )


def build_worker(client: Client[Any]) -> Worker[Any]:
    worker: Worker[Any] = Worker(client)

    @worker.handler(SendWelcome)
    async def send(attempt: Attempt[SendWelcome]) -> str:
        return f"welcome sent to {attempt.input.email}"

    return worker


async def start_signups(client: Client[Any], count: int) -> None:
    async with client.transaction() as tx:
        await client.start_chains(
            [SendWelcome(Signup(f"user{i}@example.com")) for i in range(count)], tx=tx
        )


async def main() -> None:
    import uvicorn

    async with InMemoryStateAdapter() as state, Client(state) as client:
        worker = build_worker(client)
        await start_signups(client, 5)
        server = uvicorn.Server(uvicorn.Config(build_app(client), port=8000, lifespan="off"))
        print("open http://127.0.0.1:8000/admin/queue/ (ops / change-me); Ctrl-C stops")
        async with worker:
            await server.serve()


if __name__ == "__main__":
    asyncio.run(main())
