"""`/api/dashboard/stats` and `/api/dashboard/activity` (UTC buckets)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from cronicorn.api.deps import ConnDep, RuntimeDep, UserDep
from cronicorn.api.errors import ApiError
from cronicorn.api.params import NowDep, require_id
from cronicorn.schemas.common import Text
from cronicorn.schemas.dashboard import ActivityTimeline, DashboardDate, DashboardStats
from cronicorn.store import stats

router = APIRouter(tags=["Dashboard"])

MAX_RANGE = timedelta(days=400)

StartDate = Annotated[
    DashboardDate,
    Query(alias="startDate", description="ISO 8601, or JavaScript `Date.toString()` text"),
]
EndDate = Annotated[
    DashboardDate,
    Query(alias="endDate", description="ISO 8601, or JavaScript `Date.toString()` text"),
]
JobFilter = Annotated[Text | None, Query(alias="jobId", max_length=64)]


def _check_range(start: datetime, end: datetime) -> None:
    if end <= start:
        raise ApiError(
            422,
            "endDate must be after startDate",
            details=[{"path": "endDate", "in": "query", "message": "must be after startDate"}],
        )
    if end - start > MAX_RANGE:
        raise ApiError(
            422,
            "the range may span at most 400 days",
            details=[{"path": "startDate", "in": "query", "message": "range over 400 days"}],
        )


def _job(job_id: str | None) -> str | None:
    """An unknown or malformed job id simply matches nothing."""
    if job_id is None:
        return None
    try:
        return require_id(job_id, "Job")
    except ApiError:
        return "-"


@router.get("/dashboard/stats", response_model=DashboardStats, summary="Dashboard numbers")
async def dashboard_stats(
    user: UserDep,
    conn: ConnDep,
    runtime: RuntimeDep,
    now: NowDep,
    start: StartDate,
    end: EndDate,
    job_id: JobFilter = None,
    source: Annotated[Text | None, Query(max_length=64)] = None,
    endpoint_limit: Annotated[int, Query(alias="endpointLimit", ge=1, le=100)] = 20,
) -> DashboardStats:
    _check_range(start, end)
    query = stats.StatsQuery(
        user_id=user.user_id,
        start=start,
        end=end,
        now=now,
        job_id=_job(job_id),
        source=source,
        endpoint_limit=endpoint_limit,
    )
    async with runtime.side_reads.connection() as side:  # per-endpoint sums beside the rest
        return DashboardStats.of(await stats.dashboard(conn, query, side=side))


@router.get(
    "/dashboard/activity",
    response_model=ActivityTimeline,
    summary="Runs and AI sessions merged, newest first",
    description="`nextCursor` is present when there is a next page: pass it as `cursor` (with "
    "the same range and filters) to read it, as cheap however deep; `offset` still works, "
    "counting from the newest event (or from the cursor's position).",
)
async def dashboard_activity(
    user: UserDep,
    conn: ConnDep,
    start: StartDate,
    end: EndDate,
    job_id: JobFilter = None,
    event_type: Annotated[Literal["all", "runs", "sessions"], Query(alias="eventType")] = "all",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> ActivityTimeline:
    _check_range(start, end)
    query = stats.ActivityQuery(
        user_id=user.user_id,
        start=start,
        end=end,
        job_id=_job(job_id),
        event_type=event_type,
        limit=limit,
        offset=offset,
        cursor=cursor,
    )
    return ActivityTimeline.of(await stats.activity(conn, query))
