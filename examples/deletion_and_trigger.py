"""Deleting chains and triggering scheduled jobs.

    uv run python -m examples.deletion_and_trigger

* ``delete_chains`` removes whole chains (every job and blocker link), all or nothing;
* it refuses with ``BlockerReferenceError`` while a job outside the set waits for one of them;
* ``cascade=True`` also deletes the chains the deleted ones wait for (also those attached to
  continuations, transitively);
* ``trigger_jobs`` makes scheduled jobs ready now (also "retry now" for a job waiting in backoff).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from queuert import (
    Attempt,
    BlockerReferenceError,
    Blockers,
    Chain,
    Client,
    EntryJobType,
    InMemoryStateAdapter,
    Schedule,
    Worker,
)


@dataclass
class Url:
    url: str


@dataclass
class Size:
    url: str
    size: int


@dataclass
class Site:
    name: str


class Crawl(EntryJobType[Url, Size]):
    pass


class BuildSitemap(EntryJobType[Site, Size], Blockers[tuple[Chain[Crawl], ...]]):
    pass


async def main() -> dict[str, Any]:
    results: dict[str, Any] = {}
    # No worker here handles BuildSitemap: the client lists it (Crawl, its blocker, comes along).
    async with InMemoryStateAdapter() as state, Client(state, job_types=[BuildSitemap]) as client:
        worker = Worker(client)

        @worker.handler(Crawl)
        async def crawl(attempt: Attempt[Crawl]) -> Size:
            return Size(attempt.input.url, len(attempt.input.url) * 100)

        # A sitemap waiting for two crawls, and a crawl planned for tomorrow.
        async with client.transaction() as tx:
            pages = await client.start_chains([Crawl(Url("/")), Crawl(Url("/about"))], tx=tx)
            sitemap = await client.start_chain(
                BuildSitemap(Site("example.com"), blockers=tuple(pages)), tx=tx
            )
            tomorrow = await client.start_chain(
                Crawl(Url("/blog"), schedule=Schedule(after=timedelta(days=1))), tx=tx
            )
        print(f"sitemap {sitemap.root.status}, /blog {tomorrow.root.status}")

        # A chain something waits for cannot be deleted on its own.
        try:
            async with client.transaction() as tx:
                await client.delete_chains([pages[0]], tx=tx)
        except BlockerReferenceError as refused:
            (reference,) = refused.references
            results["refused"] = reference.referenced_by_job_id == sitemap.id
            print(f"refused: the crawl of / still blocks {sitemap.type_name} ({reference})")

        # cascade=True takes the sitemap's blocker chains along.
        async with client.transaction() as tx:
            deleted = await client.delete_chains([sitemap], cascade=True, tx=tx)
        results["deleted"] = sorted(chain.type_name for chain in deleted)
        print(f"cascade deleted {results['deleted']}")

        # Run tomorrow's crawl now.
        async with client.transaction() as tx:
            (job,) = await client.trigger_jobs([tomorrow.id], tx=tx)
        print(f"/blog triggered: {job.status}")
        async with worker:
            results["blog"] = await client.wait_for_chain(tomorrow, timeout=10)
        print(f"/blog crawled: {results['blog']}")

        async with client.transaction() as tx:
            # completed chains are deleted the same way
            await client.delete_chains([tomorrow], tx=tx)
        results["left"] = len((await client.list_chains()).items)
        print(f"chains left: {results['left']}")
    return results


if __name__ == "__main__":
    asyncio.run(main())
