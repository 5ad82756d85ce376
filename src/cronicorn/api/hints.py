"""`/api/endpoints/{id}/…`: steer one endpoint (hints, pause, failure reset) and preview
its next runs. Each write replans with the domain governor and wakes the schedulers when the
next run moves earlier, so it takes effect at once (reference defects 2 and 23)."""

from __future__ import annotations

from datetime import timedelta
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
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store.errors import Invalid

router = APIRouter(tags=["Adaptive Scheduling"])

ONESHOT_GRACE_MINUTES = 60


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
    await endpoint_store.set_interval_hint(
        conn,
        user.user_id,
        require_id(id, "Endpoint"),
        interval_ms=body.interval_ms,
        expires_at=now + timedelta(minutes=body.ttl_minutes),
        reason=body.reason,
        now=now,
        quotas=quotas,
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
    if (body.next_run_at is None) == (body.next_run_in_ms is None):
        raise Invalid("next_run_at", "send exactly one of nextRunAt or nextRunInMs")
    if body.next_run_at is not None:
        at = body.next_run_at
    else:
        at = now + timedelta(milliseconds=body.next_run_in_ms or 0)
    # The reference's clients rarely send ttlMinutes; its fixed 60-minute default made a
    # one-shot more than an hour ahead expire unseen. Without a TTL it now outlives its run.
    ttl = timedelta(minutes=body.ttl_minutes or ONESHOT_GRACE_MINUTES)
    await endpoint_store.set_oneshot_hint(
        conn,
        user.user_id,
        require_id(id, "Endpoint"),
        at=at,
        expires_at=now + ttl if body.ttl_minutes is not None else max(now, at) + ttl,
        reason=body.reason,
        now=now,
    )
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
