"""Quota checks and the monthly run meter.

The endpoint-count check locks the user's row first, so two concurrent creates cannot both
take the last free place. The run meter (`monthly_usage`) is incremented in the same
statement that creates a run: by the claim (see `claims`) and by "run now" here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Text, and_, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain import Quotas, Source, month_start, next_month_start
from cronicorn.store.errors import QuotaExceeded
from cronicorn.store.tables import endpoints, jobs, monthly_usage, users

LIVE_ENDPOINTS = endpoints.join(jobs, jobs.c.id == endpoints.c.job_id)
"""Join for `live_endpoints(user_id)`: an endpoint counts only while its job is not archived."""


def live_endpoints(user_id: str | ColumnElement[str]) -> ColumnElement[bool]:
    """The user's endpoints that count toward the quota (and the dashboard's total)."""
    return and_(
        endpoints.c.user_id == user_id,
        endpoints.c.archived_at.is_(None),
        jobs.c.status != "archived",
    )


async def live_endpoint_count(conn: AsyncConnection, user_id: str) -> int:
    count = await conn.scalar(
        select(func.count()).select_from(LIVE_ENDPOINTS).where(live_endpoints(user_id))
    )
    return int(count or 0)


async def check_endpoint_room(conn: AsyncConnection, user_id: str, quotas: Quotas) -> None:
    """Raise `QuotaExceeded` if one more endpoint would pass QUOTA_MAX_ENDPOINTS. Holds the
    user's row lock until the transaction ends, so concurrent creates queue up here. NO KEY
    UPDATE: it does not block the foreign-key checks of rows that point at the user (the
    scheduler inserting runs), only other holders of this lock."""
    if quotas.max_endpoints <= 0:
        return
    await conn.execute(
        select(users.c.id).where(users.c.id == user_id).with_for_update(key_share=True)
    )
    used = await live_endpoint_count(conn, user_id)
    if used >= quotas.max_endpoints:
        raise QuotaExceeded(
            "QUOTA_MAX_ENDPOINTS",
            f"Endpoint quota reached: {used} of {quotas.max_endpoints} endpoints; archive or "
            "delete one first",
            limit=quotas.max_endpoints,
            used=used,
        )


async def runs_this_month(conn: AsyncConnection, user_id: str, now: datetime) -> int:
    count = await conn.scalar(
        select(monthly_usage.c.runs).where(
            monthly_usage.c.user_id == user_id, monthly_usage.c.period_start == month_start(now)
        )
    )
    return int(count or 0)


async def meter(conn: AsyncConnection, user_id: str, now: datetime) -> tuple[int, int]:
    """(runs, AI tokens) on the user's meter for this UTC month: the numbers the quotas count."""
    row = (
        await conn.execute(
            select(monthly_usage.c.runs, monthly_usage.c.ai_tokens).where(
                monthly_usage.c.user_id == user_id,
                monthly_usage.c.period_start == month_start(now),
            )
        )
    ).first()
    return (int(row.runs), int(row.ai_tokens)) if row is not None else (0, 0)


async def open_meter(conn: AsyncConnection, user_id: str, quotas: Quotas, now: datetime) -> None:
    """Under a run quota, make sure the user's meter for this month exists (see
    `claims.open_meters`): a user's first endpoint opens it."""
    if quotas.runs_per_month <= 0:
        return
    stmt = insert(monthly_usage).values(user_id=user_id, period_start=month_start(now), runs=0)
    await conn.execute(stmt.on_conflict_do_nothing())


async def reserve_run(conn: AsyncConnection, user_id: str, quotas: Quotas, now: datetime) -> None:
    """Count one run on the user's meter now, before it starts, or raise `QuotaExceeded` if
    this month's runs reached QUOTA_RUNS_PER_MONTH. One conditional upsert: concurrent
    callers each take a place or are refused, so together they never pass the quota."""
    stmt = insert(monthly_usage).values(user_id=user_id, period_start=month_start(now), runs=1)
    upsert = stmt.on_conflict_do_update(
        index_elements=[monthly_usage.c.user_id, monthly_usage.c.period_start],
        set_={"runs": monthly_usage.c.runs + 1},
        where=monthly_usage.c.runs < quotas.runs_per_month if quotas.runs_per_month > 0 else None,
    )
    if (await conn.execute(upsert.returning(monthly_usage.c.runs))).first() is not None:
        return
    used = await runs_this_month(conn, user_id, now)
    raise QuotaExceeded(
        "QUOTA_RUNS_PER_MONTH",
        f"Monthly run quota reached: {used} of {quotas.runs_per_month} runs this month",
        limit=quotas.runs_per_month,
        used=used,
        resets_at=next_month_start(now),
    )


async def release_deferred(conn: AsyncConnection, quotas: Quotas, now: datetime) -> int:
    """Endpoints the run quota deferred to next month whose user has room again (the quota
    was raised or switched off): due now, as one catch-up run. Returns how many."""
    deferred = and_(
        endpoints.c.next_run_source == Source.QUOTA,
        endpoints.c.next_run_at > now,
        endpoints.c.archived_at.is_(None),
    )
    if quotas.runs_per_month > 0:
        full = select(monthly_usage.c.user_id).where(
            monthly_usage.c.period_start == month_start(now),
            monthly_usage.c.runs >= quotas.runs_per_month,
        )
        deferred = and_(deferred, endpoints.c.user_id.not_in(full))
    # Locked in id order first, like every multi-row endpoint lock (see `claims`).
    ids = list(
        await conn.scalars(
            select(endpoints.c.id)
            .where(deferred)
            .order_by(endpoints.c.id)
            .with_for_update(of=endpoints)
        )
    )
    if not ids:
        return 0
    result = await conn.execute(
        update(endpoints)
        .where(endpoints.c.id == any_(bindparam("ids", ids, type_=ARRAY(Text))), deferred)
        .values(next_run_at=now, next_run_source=Source.MISFIRE)
    )
    return result.rowcount
