"""The chain list (filters, keyset pages, blocker chains hidden unless asked for) and the chain page
(its graph and every job of it)."""

from __future__ import annotations

import asyncio
from typing import Any

from queuert import Chain, Job
from queuert.errors import UsageError
from queuert.state import Page
from starlette.requests import Request
from starlette.responses import Response

from queuert_dashboard.context import Dashboard
from queuert_dashboard.filters import CHAIN_STATUSES, PAGE_SIZE, ListQuery, parse_list_query
from queuert_dashboard.graph import ChainGraph, layout_chain

__all__ = ["chain_detail", "chain_list"]

MAX_CHAIN_JOBS = 50
"""The chain page shows at most this many of a chain's jobs (the first ones; the job list filtered
by the chain pages through all of them)."""
MAX_DEPENDENTS = 50


async def _find_chains(dash: Dashboard, query: ListQuery) -> Page[Chain[Any]]:
    client = dash.client
    common: dict[str, Any] = {
        "type_names": [query.type_name] if query.type_name else None,
        "status": query.status or None,
        "created_from": query.created_from,
        "created_to": query.created_to,
        "cursor": query.cursor,
        "limit": PAGE_SIZE,
    }
    if query.search:
        if dash.is_id(query.search):
            by_chain = await client.list_chains(chain_ids=[query.search], **common)
            if by_chain.items or query.cursor:
                return by_chain
            return await client.list_chains(job_ids=[query.search], **common)
        return await client.list_chains(deduplication_keys=[query.search], **common)
    return await client.list_chains(root_only=not query.show_blockers, **common)


async def chain_list(dash: Dashboard, request: Request) -> Response:
    query = parse_list_query(request.query_params, statuses=CHAIN_STATUSES)
    try:
        page = await _find_chains(dash, query)
    except UsageError as exc:  # a cursor of another list, a malformed one
        query.errors.append(str(exc))
        query.cursor = None
        page = Page([], None)
    return dash.renderer.page(
        request,
        "chains.html",
        {"query": query, "page": page, "statuses": CHAIN_STATUSES, "section": "chains"},
    )


async def chain_detail(dash: Dashboard, request: Request) -> Response:
    chain_id = request.path_params["chain_id"]
    client = dash.client
    if not dash.is_id(chain_id):
        return dash.not_found(request, "chain", chain_id)
    chain = await client.get_chain(chain_id)
    if chain is None:
        return dash.not_found(request, "chain", chain_id)
    jobs_page = await client.list_chain_jobs(chain_id, limit=MAX_CHAIN_JOBS)
    jobs: list[Job] = jobs_page.items
    found = await asyncio.gather(*(client.get_job_blockers(job.id) for job in jobs))
    blockers: dict[str, list[Chain[Any]]] = {
        job.id: waits_for for job, waits_for in zip(jobs, found, strict=True) if waits_for
    }
    dependents_page = await client.list_blocked_jobs(chain_id, limit=MAX_DEPENDENTS)
    graph: ChainGraph = layout_chain(jobs, blockers, dependents_page.items)
    return dash.renderer.page(
        request,
        "chain.html",
        {
            "chain": chain,
            "jobs": jobs,
            "more_jobs": jobs_page.next_cursor is not None,
            "blockers": blockers,
            "dependents": dependents_page.items,
            "more_dependents": dependents_page.next_cursor is not None,
            "graph": graph,
            "section": "chains",
            "notice_key": request.query_params.get("notice", ""),
        },
    )
