"""The caller's dashboard numbers and outbound signing key (as `/api/dashboard/stats` and
`/api/signing-keys`). The original's getDashboardStats never sent its dates and always failed;
here the range defaults to the last 7 days."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from cronicorn.dispatch.signing import encrypt_signing_key, generate_signing_key
from cronicorn.domain import next_month_start
from cronicorn.mcp.errors import invalid
from cronicorn.mcp.tooling import Call, NoArguments, Tool
from cronicorn.schemas.common import In, Text
from cronicorn.schemas.dashboard import (
    ActivityTimeline,
    DashboardDate,
    DashboardStats,
    GraceKey,
    KeyInfo,
    NewKey,
    Usage,
)
from cronicorn.store import signing_keys as key_store
from cronicorn.store import stats

MAX_RANGE = timedelta(days=400)
DEFAULT_RANGE = timedelta(days=7)


class StatsQuery(In):
    start_date: DashboardDate | None = Field(
        default=None, description="ISO-8601 start of the range (default: 7 days before endDate)"
    )
    end_date: DashboardDate | None = Field(
        default=None, description="ISO-8601 end of the range (default: now); at most 400 days"
    )
    job_id: Text | None = Field(default=None, max_length=64, description="Only this job's runs")
    source: Text | None = Field(
        default=None,
        max_length=64,
        description="Only runs from this source (baseline-interval, baseline-cron, "
        "ai-interval, ai-oneshot, rule, test, …)",
    )
    endpoint_limit: int = Field(
        default=20, ge=1, le=100, description="How many endpoints in the per-endpoint series"
    )


class ActivityQuery(In):
    start_date: DashboardDate | None = Field(
        default=None, description="ISO-8601 start of the range (default: 7 days before endDate)"
    )
    end_date: DashboardDate | None = Field(
        default=None, description="ISO-8601 end of the range (default: now); at most 400 days"
    )
    job_id: Text | None = Field(default=None, max_length=64, description="Only this job")
    event_type: Literal["all", "runs", "sessions"] = Field(
        default="all", description="runs, AI planner sessions, or both"
    )
    limit: int = Field(default=50, ge=1, le=100, description="Page size (1-100)")
    offset: int = Field(default=0, ge=0, le=100_000, description="Events to skip (paging)")
    cursor: Text | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="nextCursor of the previous page: the page after it, however deep",
    )


def _range(call: Call, start_date: Any, end_date: Any) -> tuple[Any, Any]:
    """The range asked for (default: the 7 days up to now), checked as the API checks it."""
    end = end_date or call.now
    start = start_date or end - DEFAULT_RANGE
    if end <= start:
        raise invalid("end_date", "must be after startDate", "arguments")
    if end - start > MAX_RANGE:
        raise invalid("start_date", "the range may span at most 400 days", "arguments")
    return start, end


async def _activity(call: Call, query: ActivityQuery) -> ActivityTimeline:
    start, end = _range(call, query.start_date, query.end_date)
    q = stats.ActivityQuery(
        user_id=call.user_id,
        start=start,
        end=end,
        job_id=query.job_id,
        event_type=query.event_type,
        limit=query.limit,
        offset=query.offset,
        cursor=query.cursor,
    )
    return ActivityTimeline.of(await stats.activity(call.conn, q))


async def _usage(call: Call, _: NoArguments) -> Usage:
    counts = await stats.usage(call.conn, call.user_id, call.now)
    settings = call.runtime.settings
    quotas = settings.quotas
    return Usage(
        period_start=counts.period_start,
        period_end=next_month_start(call.now),
        endpoints_used=counts.endpoints,
        endpoints_limit=quotas.max_endpoints or None,
        runs_this_month=counts.runs,
        total_runs=counts.runs,
        total_runs_limit=quotas.runs_per_month or None,
        min_interval_ms=quotas.min_interval_ms or None,
        ai_tokens_this_month=counts.ai_tokens,
        ai_calls_used=counts.ai_tokens,
        ai_calls_limit=settings.quota_ai_tokens_per_month or None,
    )


async def _stats(call: Call, query: StatsQuery) -> DashboardStats:
    start, end = _range(call, query.start_date, query.end_date)
    q = stats.StatsQuery(
        user_id=call.user_id,
        start=start,
        end=end,
        now=call.now,
        job_id=query.job_id,
        source=query.source,
        endpoint_limit=query.endpoint_limit,
    )
    return DashboardStats.of(await stats.dashboard(call.conn, q))


def _new_key(call: Call) -> tuple[str, bytes, str]:
    raw, shown, prefix = generate_signing_key()
    return shown, encrypt_signing_key(raw, call.runtime.auth_secret), prefix


async def _get_key(call: Call, _: NoArguments) -> KeyInfo:
    keys = await key_store.list_live(call.conn, call.user_id, call.now)
    current = next((k for k in keys if k.retire_at is None), None)
    grace = [
        GraceKey(key_prefix=k.key_prefix, retire_at=k.retire_at)
        for k in keys
        if k.retire_at is not None
    ]
    return KeyInfo(
        has_key=current is not None,
        key_prefix=current.key_prefix if current else None,
        created_at=current.created_at if current else None,
        rotated_at=current.rotated_at if current else None,
        grace_keys=grace,
    )


async def _create_key(call: Call, _: NoArguments) -> NewKey:
    raw, encrypted, prefix = _new_key(call)
    await key_store.create(
        call.conn, call.user_id, encrypted=encrypted, prefix=prefix, now=call.now
    )
    return NewKey(raw_key=raw, key_prefix=prefix)


async def _rotate_key(call: Call, _: NoArguments) -> NewKey:
    raw, encrypted, prefix = _new_key(call)
    grace = timedelta(hours=call.runtime.settings.signing_key_grace_hours)
    _old, retire_at = await key_store.rotate(
        call.conn, call.user_id, encrypted=encrypted, prefix=prefix, now=call.now, grace=grace
    )
    return NewKey(raw_key=raw, key_prefix=prefix, previous_key_retire_at=retire_at)


TOOLS: list[Tool[Any]] = [
    Tool(
        "getDashboardStats",
        "Dashboard numbers",
        "Counts of jobs and endpoints, success rate, recent activity, per-job health and time "
        "series (hourly buckets up to 14 days, daily beyond) over startDate..endDate "
        "(ISO-8601; default the last 7 days). Filters: jobId, source, endpointLimit.",
        StatsQuery,
        _stats,
        output=DashboardStats,
        read_only=True,
    ),
    Tool(
        "getActivity",
        "Activity timeline",
        "Runs and AI planner sessions merged, newest first, over startDate..endDate "
        "(ISO-8601; default the last 7 days), with a summary. Filters: jobId, eventType "
        "(all, runs, sessions), limit, offset.",
        ActivityQuery,
        _activity,
        output=ActivityTimeline,
        read_only=True,
    ),
    Tool(
        "getUsage",
        "Usage this month",
        "Endpoints, runs and AI tokens used this calendar month (UTC), against the operator's "
        "quotas (a null limit is unlimited), and when the counts reset.",
        NoArguments,
        _usage,
        output=Usage,
        read_only=True,
    ),
    Tool(
        "getSigningKey",
        "The signing key",
        "Whether the caller has an outbound signing key, its prefix and dates, and keys still "
        "signing during a rotation's grace period. Never the raw key.",
        NoArguments,
        _get_key,
        output=KeyInfo,
        read_only=True,
    ),
    Tool(
        "createSigningKey",
        "Create the signing key",
        "Create the HMAC key that signs every outbound call (X-Cronicorn-Signature). The raw "
        "key is returned once: store it on the receiving side. Fails (409) if one exists: use "
        "rotateSigningKey.",
        NoArguments,
        _create_key,
        output=NewKey,
    ),
    Tool(
        "rotateSigningKey",
        "Rotate the signing key",
        "Replace the signing key; the old one keeps signing during the grace period so "
        "receivers can switch over. The new raw key is returned once.",
        NoArguments,
        _rotate_key,
        output=NewKey,
        destructive=True,
    ),
]
