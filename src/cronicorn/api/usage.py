"""`/api/subscriptions/usage`: what the user used this month. Self-hosted: no billing, so
every limit is null."""

from __future__ import annotations

from fastapi import APIRouter

from cronicorn.api.deps import ConnDep, UserDep
from cronicorn.api.schemas.common import NowDep
from cronicorn.api.schemas.dashboard import Usage
from cronicorn.store import stats

router = APIRouter(tags=["Usage"])


@router.get("/subscriptions/usage", response_model=Usage, summary="Usage this calendar month")
async def usage(user: UserDep, conn: ConnDep, now: NowDep) -> Usage:
    counts = await stats.usage(conn, user.user_id, now)
    return Usage(
        period_start=counts["periodStart"],
        endpoints_used=counts["endpointsUsed"],
        runs_this_month=counts["runsThisMonth"],
        total_runs=counts["runsThisMonth"],
        ai_tokens_this_month=counts["aiTokensThisMonth"],
        ai_calls_used=counts["aiTokensThisMonth"],
    )
