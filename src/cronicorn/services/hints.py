"""Hints from a person or an agent (the REST API, the dashboard, MCP): an interval for a
while, or one run at a given time. The planner sets its own through the same store calls."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain import Quotas
from cronicorn.schemas.endpoints import IntervalHintIn, OneshotHintIn
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store.endpoints import EndpointRow
from cronicorn.store.errors import Invalid

ONESHOT_GRACE_MINUTES = 60


async def interval_hint(
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    body: IntervalHintIn,
    now: datetime,
    *,
    quotas: Quotas,
) -> EndpointRow:
    """Run at `body.interval_ms` (within the endpoint's min/max) for `ttl_minutes`."""
    return await endpoint_store.set_interval_hint(
        conn,
        user_id,
        endpoint_id,
        interval_ms=body.interval_ms,
        expires_at=now + timedelta(minutes=body.ttl_minutes),
        reason=body.reason,
        now=now,
        quotas=quotas,
    )


async def oneshot_hint(
    conn: AsyncConnection, user_id: str, endpoint_id: str, body: OneshotHintIn, now: datetime
) -> EndpointRow:
    """Run once at `next_run_at`, or `next_run_in_ms` from now (exactly one is sent)."""
    if (body.next_run_at is None) == (body.next_run_in_ms is None):
        raise Invalid("next_run_at", "send exactly one of nextRunAt or nextRunInMs")
    if body.next_run_at is not None:
        at = body.next_run_at
    else:
        at = now + timedelta(milliseconds=body.next_run_in_ms or 0)
    # The reference's clients rarely send ttlMinutes; its fixed 60-minute default made a
    # one-shot more than an hour ahead expire unseen. Without a TTL it now outlives its run.
    ttl = timedelta(minutes=body.ttl_minutes or ONESHOT_GRACE_MINUTES)
    return await endpoint_store.set_oneshot_hint(
        conn,
        user_id,
        endpoint_id,
        at=at,
        expires_at=now + ttl if body.ttl_minutes is not None else max(now, at) + ttl,
        reason=body.reason,
        now=now,
    )
