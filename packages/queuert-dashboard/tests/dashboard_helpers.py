"""Helpers of the dashboard tests: a dashboard served over one backend (:class:`Site`), and jobs
written straight through the state adapter (:class:`Seeder`), so type names, inputs and errors can
be anything (hostile strings included)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from queuert import Client
from queuert.json import JsonValue
from queuert.schedule import Deduplication, Schedule
from queuert.state import NewJob, StateAdapter, StoredJob
from queuert_dashboard import create_dashboard
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

T = TypeVar("T")

PG_DSN = os.environ.get("QUEUERT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("QUEUERT_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
BACKENDS = ["memory", "sqlite", "postgres", "mysql"]


class Swappable:
    """An ASGI application that forwards to whichever dashboard the test serves now."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while message is not None:
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
                message = await receive()
            return
        assert self.app is not None, "serve a dashboard first"
        await self.app(scope, receive, send)


class Site:
    """A dashboard over one backend: ``http`` to request pages, ``run`` to run setup code on the
    application's loop, ``seed`` to create jobs directly in the store."""

    def __init__(self, http: TestClient, client: Client[Any], swappable: Swappable) -> None:
        self.http = http
        self.client = client
        self.swappable = swappable
        self.seed = Seeder(client.state, self.run)
        self.serve()

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        portal = self.http.portal
        assert portal is not None
        return portal.call(fn)

    def serve(self, app: ASGIApp | None = None, **options: Any) -> ASGIApp:
        """Serve ``app``, or a dashboard over the site's client built with ``options``."""
        self.swappable.app = app if app is not None else create_dashboard(self.client, **options)
        return self.swappable.app

    def csrf(self) -> str:
        """The CSRF token the dashboard gave this browser (loads a page to get one)."""
        self.http.get("/")
        token = self.http.cookies.get("queuert_csrf")
        assert token
        return token


def backend_url(backend: str, tmp_path: Path) -> tuple[str, Callable[[], Awaitable[None]] | None]:
    if backend == "memory":
        return "memory://", None
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'dashboard.db'}", None
    if backend == "mysql":
        prefix = f"qdash{uuid.uuid4().hex[:8]}_"

        async def drop_tables() -> None:
            import aiomysql

            url = urlsplit(MYSQL_URL)
            conn = await aiomysql.connect(
                host=url.hostname or "127.0.0.1",
                port=url.port or 3306,
                user=unquote(url.username or "root"),
                password=unquote(url.password or ""),
                db=url.path.lstrip("/"),
                autocommit=True,
            )
            try:
                async with conn.cursor() as cur:
                    await cur.execute(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = DATABASE() AND table_name LIKE %s",
                        (prefix.replace("_", "\\_") + "%",),
                    )
                    tables = [row[0] for row in await cur.fetchall()]
                    await cur.execute("SET FOREIGN_KEY_CHECKS = 0")
                    for table in tables:
                        await cur.execute(f"DROP TABLE IF EXISTS `{table}`")
            finally:
                conn.close()

        return f"{MYSQL_URL}?table_prefix={prefix}", drop_tables
    schema = f"qd_{uuid.uuid4().hex[:12]}"

    async def drop() -> None:
        import asyncpg

        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    return f"{PG_DSN}?schema={schema}", drop


HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>\'"'
"""A string that would run script if a page printed it unescaped."""


class Seeder:
    def __init__(self, state: StateAdapter[Any], run: Callable[[Callable[[], Awaitable[T]]], T]):
        self.state = state
        self.run = run

    def start(
        self,
        type_name: str = "shop.order",
        input: JsonValue = None,
        *,
        key: str | None = None,
        after: timedelta | None = None,
        blockers: Sequence[str] = (),
    ) -> StoredJob:
        state = self.state
        job = NewJob(
            id=state.ids.generate(),
            type_name=type_name,
            chain_type_name=type_name,
            input=input,
            schedule=Schedule(after=after) if after is not None else None,
            deduplication=Deduplication(key) if key is not None else None,
        )

        async def go() -> StoredJob:
            async with state.transaction() as tx:
                (created,) = await state.create_jobs([job], tx=tx)
                if blockers:
                    (added,) = await state.add_blockers([(job.id, list(blockers))], tx=tx)
                    return added.job
                return created.job

        return self.run(go)

    def continue_chain(self, job: StoredJob, type_name: str, input: JsonValue = None) -> StoredJob:
        state = self.state
        nxt = NewJob(
            id=state.ids.generate(),
            type_name=type_name,
            chain_type_name=job.chain_type_name,
            input=input,
            chain_id=job.chain_id,
            chain_index=job.chain_index + 1,
        )

        async def go() -> StoredJob:
            async with state.transaction() as tx:
                await state.get_job(job.id, lock=True, tx=tx)
                (created,) = await state.create_jobs([nxt], tx=tx)
                await state.complete_job(
                    job.id, outcome="completed", worker_id=None, succeeded_by_job_id=nxt.id, tx=tx
                )
                return created.job

        return self.run(go)

    def claim(
        self,
        type_name: str,
        worker_id: str = "worker-1",
        lease: timedelta = timedelta(minutes=5),
    ) -> list[StoredJob]:
        async def go() -> list[StoredJob]:
            result = await self.state.claim_jobs(
                leases={type_name: lease}, limit=100, worker_id=worker_id
            )
            return result.jobs

        return self.run(go)

    def close(
        self,
        job_id: str,
        outcome: Any = "completed",
        *,
        output: JsonValue = None,
        worker_id: str | None = None,
        error: str | None = None,
    ) -> StoredJob:
        async def go() -> StoredJob:
            async with self.state.transaction() as tx:
                await self.state.get_job(job_id, lock=True, tx=tx)
                result = await self.state.complete_job(
                    job_id, outcome=outcome, worker_id=worker_id, output=output, error=error, tx=tx
                )
                return result.job

        return self.run(go)

    def get(self, job_id: str) -> StoredJob | None:
        async def go() -> StoredJob | None:
            return await self.state.get_job(job_id)

        return self.run(go)


def hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html)
