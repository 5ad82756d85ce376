"""`/api/subscriptions/usage`: what the user used this month, against the operator's quotas
(QUOTA_*; a limit is null when that quota is off). No billing."""

from __future__ import annotations

from fastapi import APIRouter

from cronicorn.api.deps import ConnDep, QuotasDep, RuntimeDep, UserDep
from cronicorn.api.params import NowDep
from cronicorn.domain import next_month_start
from cronicorn.schemas.dashboard import Usage
from cronicorn.store import stats

router = APIRouter(tags=["Usage"])


@router.get("/subscriptions/usage", response_model=Usage, summary="Usage this calendar month")
async def usage(
    user: UserDep, conn: ConnDep, quotas: QuotasDep, now: NowDep, runtime: RuntimeDep
) -> Usage:
    counts = await stats.usage(conn, user.user_id, now)
    return Usage(
        period_start=counts.period_start,
        period_end=next_month_start(now),
        endpoints_used=counts.endpoints,
        endpoints_limit=quotas.max_endpoints or None,
        runs_this_month=counts.runs,
        total_runs=counts.runs,
        total_runs_limit=quotas.runs_per_month or None,
        min_interval_ms=quotas.min_interval_ms or None,
        ai_tokens_this_month=counts.ai_tokens,
        ai_calls_used=counts.ai_tokens,
        # QUOTA_AI_TOKENS_PER_MONTH: past it the planner stops for the user until next month.
        ai_calls_limit=runtime.settings.quota_ai_tokens_per_month or None,
    )
