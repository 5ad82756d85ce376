"""What happened: runs, one run's details, health (as `/api/endpoints/{id}/runs`,
`/api/runs/{id}`, `/api/endpoints/{id}/health`). Every filter is applied (the original's tools
never sent them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field

from cronicorn.mcp.tooling import Call, NoArguments, PathId, Tool
from cronicorn.schemas.common import In, InDatetime
from cronicorn.schemas.endpoints import TestResult
from cronicorn.schemas.history import Health, RunDetails, RunList, RunListItem
from cronicorn.services.runs import run_now
from cronicorn.store import runs as run_store
from cronicorn.store.runs import RunStatus

ENDPOINT_ID = (PathId("id", "Endpoint", "The endpoint's id"),)
RUN_ID = (PathId("id", "Run", "The run's id (runId in listEndpointRuns)"),)


class RunQuery(In):
    status: RunStatus | None = Field(default=None, description="Only runs with this outcome")
    since: InDatetime | None = Field(
        default=None, description="Only runs started at or after this ISO-8601 instant"
    )
    until: InDatetime | None = Field(
        default=None, description="Only runs started before this ISO-8601 instant"
    )
    limit: int = Field(default=20, ge=1, le=1000, description="Page size (1-1000)")
    offset: int = Field(default=0, ge=0, le=1_000_000, description="Runs to skip (paging)")
    cursor: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="nextCursor of the previous page: the page after it (same filters)",
    )


class HealthQuery(In):
    since_hours: int = Field(
        default=24, ge=1, le=24 * 366, description="The window, in hours back from now"
    )


async def _runs(call: Call, query: RunQuery) -> RunList:
    page = await run_store.page_for_endpoint(
        call.conn,
        call.user_id,
        call.id("id"),
        status=query.status,
        since=query.since,
        until=query.until,
        limit=query.limit,
        offset=query.offset,
        cursor=query.cursor,
    )
    items = [
        RunListItem(
            run_id=run.id,
            endpoint_id=run.endpoint_id,
            status=run.status,
            source=run.source,
            attempt=run.attempt,
            due_at=run.due_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_ms=run.duration_ms,
            status_code=run.status_code,
            error_message=run.error_message,
        )
        for run in page.items
    ]
    return RunList(
        runs=items,
        total=page.total,
        limit=query.limit,
        offset=query.offset,
        next_cursor=page.next_cursor,
    )


async def _run(call: Call, _: NoArguments) -> RunDetails:
    return RunDetails.of(await run_store.get_detail(call.conn, call.user_id, call.id("id")))


async def _health(call: Call, query: HealthQuery) -> Health:
    since = call.now - timedelta(hours=query.since_hours)
    summary = await run_store.health(call.conn, call.user_id, call.id("id"), since)
    return Health.of(summary, query.since_hours)


async def _test(call: Call, _: NoArguments) -> TestResult:
    """Run now, as `POST /api/endpoints/{id}/test` (`services.runs.run_now`)."""
    return await run_now(
        call.conn,
        call.user_id,
        call.id("id"),
        call.now,
        dispatcher=await call.dispatcher(),
        auth_secret=call.runtime.auth_secret,
        quotas=call.runtime.settings.quotas,
    )


TOOLS: list[Tool[Any]] = [
    Tool(
        "listEndpointRuns",
        "List an endpoint's runs",
        "An endpoint's runs, newest first, with the total matching. Filters: status "
        "(running, success, failed, skipped: an overlapping run not started), since/until "
        "(ISO-8601, on startedAt), limit and offset; for the next page pass the result's "
        "nextCursor as cursor (absent on the last page).",
        RunQuery,
        _runs,
        ids=ENDPOINT_ID,
        output=RunList,
        read_only=True,
    ),
    Tool(
        "getRunDetails",
        "Get one run",
        "One run with its response (JSON body or text, capped), status code, error, the "
        "calls of a retried slot and the response rules that fired.",
        NoArguments,
        _run,
        ids=RUN_ID,
        output=RunDetails,
        read_only=True,
    ),
    Tool(
        "getEndpointHealth",
        "Endpoint health",
        "Success and failure counts, average duration, last run and current failure streak "
        "over the last `sinceHours` hours (default 24).",
        HealthQuery,
        _health,
        ids=ENDPOINT_ID,
        output=Health,
        read_only=True,
    ),
    Tool(
        "testEndpoint",
        "Run now",
        "Call the endpoint at once and record a `test` run, through the same SSRF guard, "
        "signing and assertions as scheduled runs. Its schedule, failure count and hints are "
        "untouched. A failed call is still a result, with status failed. Archived endpoints "
        "cannot run (409); a used-up monthly run quota is a 403.",
        NoArguments,
        _test,
        ids=ENDPOINT_ID,
        output=TestResult,
        open_world=True,
    ),
]
