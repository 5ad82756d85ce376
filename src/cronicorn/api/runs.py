"""Run history (`/api/endpoints/{id}/runs`, `/api/runs/{id}`, `/api/endpoints/{id}/health`)
and run now (`POST /api/endpoints/{id}/test`), which calls the endpoint through the
dispatcher at once and records a `test` run."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response

from cronicorn.api.deps import ConnDep, ListingDep, RuntimeDep, UserDep
from cronicorn.api.endpoints import DispatcherDep
from cronicorn.api.params import NowDep, require_id
from cronicorn.schemas.common import InDatetime
from cronicorn.schemas.endpoints import TestResult
from cronicorn.schemas.history import RUN_ITEM_JSON, Health, RunDetails, RunList
from cronicorn.services import runs as services_runs
from cronicorn.store import runs as run_store
from cronicorn.store.read_pool import ReadPool
from cronicorn.store.runs import RunStatus

router = APIRouter(tags=["Execution"])


LIMIT_DEFAULT, LIMIT_MAX, OFFSET_MAX = 100, 1000, 1_000_000  # also `api.fast_lists`


@router.get(
    "/endpoints/{id}/runs",
    response_model=RunList,
    summary="An endpoint's runs, newest first",
    description="`since`/`until` bound `startedAt` (since inclusive, until exclusive). "
    "`nextCursor` is present when there is a next page: pass it as `cursor` (with the same "
    "filters) to read it, as cheap however deep; `offset` still works, counting from the "
    "newest run (or from the cursor's position).",
)
async def list_runs(
    id: str,
    read: ListingDep,  # one statement on the read pool (issue 17: a hot list route)
    status: Annotated[RunStatus | None, Query()] = None,
    since: Annotated[InDatetime | None, Query()] = None,
    until: Annotated[InDatetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = LIMIT_DEFAULT,
    offset: Annotated[int, Query(ge=0, le=OFFSET_MAX)] = 0,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> Response:
    body = await runs_json(
        read.pool,
        read.user.user_id,
        require_id(id, "Endpoint"),
        status=status,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
        cursor=cursor,
    )
    return Response(body, media_type="application/json")


async def runs_json(
    pool: ReadPool,
    user_id: str,
    endpoint_id: str,
    *,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = LIMIT_DEFAULT,
    offset: int = 0,
    cursor: str | None = None,
) -> bytes:
    """A page of runs as the route's body (also served before the framework by
    `api.fast_lists`), each run's JSON written by PostgreSQL."""
    page = await run_store.page_json_for_endpoint(
        pool,
        user_id,
        endpoint_id,
        RUN_ITEM_JSON,
        status=status,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
        cursor=cursor,
    )
    runs = ",".join(page.items)
    body = f'{{"runs":[{runs}],"total":{page.total},"limit":{limit},"offset":{offset}'
    if page.next_cursor is not None:  # absent on the last page, never null
        body += f',"nextCursor":{json.dumps(page.next_cursor)}'
    return (body + "}").encode()


@router.get("/runs/{id}", response_model=RunDetails, summary="One run, with its response")
async def get_run(id: str, user: UserDep, conn: ConnDep) -> RunDetails:
    return RunDetails.of(await run_store.get_detail(conn, user.user_id, require_id(id, "Run")))


@router.get(
    "/endpoints/{id}/health",
    response_model=Health,
    summary="Success and failure counts over the last hours",
)
async def endpoint_health(
    id: str,
    user: UserDep,
    conn: ConnDep,
    now: NowDep,
    since_hours: Annotated[int, Query(alias="sinceHours", ge=1, le=24 * 366)] = 24,
) -> Health:
    summary = await run_store.health(
        conn, user.user_id, require_id(id, "Endpoint"), now - timedelta(hours=since_hours)
    )
    return Health.of(summary, since_hours)


# -- run now --------------------------------------------------------------------------------


@router.post(
    "/endpoints/{id}/test",
    response_model=TestResult,
    summary="Run now: call the endpoint at once and record a `test` run",
    description="Goes through the same SSRF guard and signing as scheduled runs. The schedule, "
    "failure count and hints are untouched. A failed call is still a 200 with "
    '`status: "failed"`. Archived endpoints cannot be run (409); with the monthly run quota '
    "used up it is a 403 `quota_exceeded`.",
)
async def run_now(
    id: str,
    user: UserDep,
    conn: ConnDep,
    runtime: RuntimeDep,
    dispatcher: DispatcherDep,
    now: NowDep,
) -> TestResult:
    return await services_runs.run_now(
        conn,
        user.user_id,
        require_id(id, "Endpoint"),
        now,
        dispatcher=dispatcher,
        auth_secret=runtime.auth_secret,
        quotas=runtime.settings.quotas,
    )
