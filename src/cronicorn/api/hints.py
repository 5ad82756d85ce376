"""`/api/endpoints/{id}/…`: steer one endpoint (hints, pause, failure reset) and preview
its next runs. Each write replans with the domain governor and wakes the schedulers when the
next run moves earlier, so it takes effect at once (reference defects 2 and 23)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from cronicorn.api.deps import ConnDep, QuotasDep, UserDep
from cronicorn.api.params import NowDep, require_id
from cronicorn.schemas.endpoints import (
    IntervalHintIn,
    OneshotHintIn,
    PauseIn,
    Preview,
)
from cronicorn.services import hints
from cronicorn.store import endpoints as endpoint_store

router = APIRouter(tags=["Adaptive Scheduling"])


@router.post(
    "/endpoints/{id}/hints/interval",
    summary="Run at another interval for a while",
    description="The interval must lie within the endpoint's min/max; it expires after "
    "`ttlMinutes` (default 60).",
    status_code=204,
    response_class=Response,
)
async def interval_hint(
    id: str, body: IntervalHintIn, user: UserDep, conn: ConnDep, quotas: QuotasDep, now: NowDep
) -> Response:
    await hints.interval_hint(
        conn, user.user_id, require_id(id, "Endpoint"), body, now, quotas=quotas
    )
    return Response(status_code=204)


@router.post(
    "/endpoints/{id}/hints/oneshot",
    summary="Run once at a given time",
    description="Send exactly one of `nextRunAt` or `nextRunInMs`; the time must be in the "
    "future and, when `ttlMinutes` is sent, before the hint expires. Without `ttlMinutes` the "
    "hint lives until 60 minutes after the run.",
    status_code=204,
    response_class=Response,
)
async def oneshot_hint(
    id: str, body: OneshotHintIn, user: UserDep, conn: ConnDep, now: NowDep
) -> Response:
    await hints.oneshot_hint(conn, user.user_id, require_id(id, "Endpoint"), body, now)
    return Response(status_code=204)


@router.delete(
    "/endpoints/{id}/hints",
    summary="Clear both hints and return to the baseline schedule",
    status_code=204,
    response_class=Response,
)
async def clear_hints(id: str, user: UserDep, conn: ConnDep, now: NowDep) -> Response:
    await endpoint_store.clear_hints(conn, user.user_id, require_id(id, "Endpoint"), now)
    return Response(status_code=204)


@router.post(
    "/endpoints/{id}/pause",
    summary="Pause until a time, or resume with `pausedUntil: null`",
    status_code=204,
    response_class=Response,
)
async def pause_endpoint(
    id: str, body: PauseIn, user: UserDep, conn: ConnDep, now: NowDep
) -> Response:
    await endpoint_store.set_paused_until(
        conn, user.user_id, require_id(id, "Endpoint"), body.paused_until, now
    )
    return Response(status_code=204)


@router.post(
    "/endpoints/{id}/reset-failures",
    summary="Reset the failure count (ends the backoff)",
    status_code=204,
    response_class=Response,
)
async def reset_failures(id: str, user: UserDep, conn: ConnDep, now: NowDep) -> Response:
    await endpoint_store.reset_failures(conn, user.user_id, require_id(id, "Endpoint"), now)
    return Response(status_code=204)


@router.get(
    "/endpoints/{id}/preview",
    response_model=Preview,
    summary="The next planned runs and why",
    description="What the governor plans from now on if nothing changes (no run outcomes "
    "are assumed: backoff stays as it is).",
)
async def preview(
    id: str,
    user: UserDep,
    conn: ConnDep,
    now: NowDep,
    count: Annotated[int, Query(ge=1, le=50)] = 5,
) -> Preview:
    planned = await endpoint_store.preview(
        conn, user.user_id, require_id(id, "Endpoint"), now, count
    )
    return Preview(endpoint_id=id, runs=planned)
