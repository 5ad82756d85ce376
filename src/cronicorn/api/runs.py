"""`/api/endpoints/{id}/runs`, `/api/runs/{id}`, `/api/endpoints/{id}/health`: run history."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from cronicorn.api.deps import ConnDep, UserDep
from cronicorn.api.schemas.common import InDatetime, NowDep, require_id
from cronicorn.api.schemas.history import Health, RunDetails, RunList, RunListItem
from cronicorn.store import runs as run_store

router = APIRouter(tags=["Execution"])


@router.get(
    "/endpoints/{id}/runs",
    response_model=RunList,
    summary="An endpoint's runs, newest first",
    description="`since`/`until` bound `startedAt` (since inclusive, until exclusive).",
)
async def list_runs(
    id: str,
    user: UserDep,
    conn: ConnDep,
    status: Annotated[Literal["running", "success", "failed"] | None, Query()] = None,
    since: Annotated[InDatetime | None, Query()] = None,
    until: Annotated[InDatetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> RunList:
    page, total = await run_store.list_for_endpoint(
        conn,
        user.user_id,
        require_id(id, "Endpoint"),
        status=status,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return RunList(
        runs=[RunListItem.of(run) for run in page], total=total, limit=limit, offset=offset
    )


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
