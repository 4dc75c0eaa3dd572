"""The job list (filters, keyset pages) and the job page (input, output, attempts, last error with
its traceback, lease, blockers)."""

from __future__ import annotations

from typing import Any

from queuert import Job
from queuert.errors import UsageError
from queuert.state import Page
from starlette.requests import Request
from starlette.responses import Response

from queuert_dashboard.context import Dashboard
from queuert_dashboard.filters import JOB_STATUSES, PAGE_SIZE, ListQuery, parse_list_query

__all__ = ["job_detail", "job_list"]


async def _find_jobs(dash: Dashboard, query: ListQuery) -> Page[Job]:
    common: dict[str, Any] = {
        "type_names": [query.type_name] if query.type_name else None,
        "statuses": [query.status] if query.status else None,
        "created_from": query.created_from,
        "created_to": query.created_to,
        "cursor": query.cursor,
        "limit": PAGE_SIZE,
    }
    if query.search:
        if not dash.is_id(query.search):
            query.errors.append("search: not a job or chain id")
            return Page([], None)
        # a chain's id is also its first job's: a chain id lists the chain's jobs
        by_chain = await dash.client.list_jobs(chain_ids=[query.search], **common)
        if by_chain.items or query.cursor:
            return by_chain
        return await dash.client.list_jobs(job_ids=[query.search], **common)
    return await dash.client.list_jobs(**common)


async def job_list(dash: Dashboard, request: Request) -> Response:
    query = parse_list_query(request.query_params, statuses=JOB_STATUSES)
    try:
        page = await _find_jobs(dash, query)
    except UsageError as exc:
        query.errors.append(str(exc))
        query.cursor = None
        page = Page([], None)
    return dash.renderer.page(
        request,
        "jobs.html",
        {"query": query, "page": page, "statuses": JOB_STATUSES, "section": "jobs"},
    )


async def job_detail(dash: Dashboard, request: Request) -> Response:
    job_id = request.path_params["job_id"]
    if not dash.is_id(job_id):
        return dash.not_found(request, "job", job_id)
    job = await dash.client.get_job(job_id)
    if job is None:
        return dash.not_found(request, "job", job_id)
    blockers = await dash.client.get_job_blockers(job_id)
    return dash.renderer.page(
        request,
        "job.html",
        {
            "job": job,
            "blockers": blockers,
            "section": "jobs",
            "notice_key": request.query_params.get("notice", ""),
        },
    )
