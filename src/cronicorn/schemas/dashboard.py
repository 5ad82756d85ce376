"""Dashboard, usage and signing keys: query and response models.

`DashboardStats.of` and `ActivityTimeline.of` format the store's typed results
(`store.stats`) as the reference's JSON: camelCase, UTC date labels per bucket, and the
stacked charts' headroom (the tallest bucket plus 10 %)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from cronicorn.schemas.common import Absent, InDatetime, Out, UtcDatetime
from cronicorn.schemas.history import ToolCalls, Warnings
from cronicorn.store import stats

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_JS_DATE = re.compile(
    r"(?:[A-Z][a-z]{2} )?(?P<mon>[A-Z][a-z]{2}) (?P<day>\d{1,2}) (?P<year>\d{4}) "
    r"(?P<time>\d{2}:\d{2}:\d{2}) GMT(?P<sign>[+ -])(?P<hh>\d{2}):?(?P<mm>\d{2})(?: \(.*\))?"
)


def _from_js_date(value: object) -> object:
    """JavaScript's `Date.toString()` (`Mon Mar 10 2025 13:00:00 GMT+0100 (Central European
    Standard Time)`), which the reference's web client sends, as ISO 8601. A `+` that reached
    us as a space (an unencoded query string) still means `+`. Anything else passes through
    to the ISO parser."""
    if not isinstance(value, str):
        return value
    m = _JS_DATE.fullmatch(value.strip())
    if m is None or m["mon"] not in _MONTHS:
        return value
    month = _MONTHS.index(m["mon"]) + 1
    sign = "-" if m["sign"] == "-" else "+"
    return f"{m['year']}-{month:02d}-{int(m['day']):02d}T{m['time']}{sign}{m['hh']}:{m['mm']}"


DashboardDate = Annotated[InDatetime, BeforeValidator(_from_js_date)]
"""A range bound: ISO 8601, or JavaScript's `Date.toString()` text."""


def bucket_label(at: datetime, hourly: bool) -> str:
    """A bucket's start as the reference labels it: `2025-03-10 05:00:00` or `2025-03-10`."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:00:00") if hourly else at.strftime("%Y-%m-%d")


def headroom(stacks: Iterable[tuple[datetime, int]]) -> float:
    """The y-axis top of a stacked chart: the tallest bucket's sum plus 10 %."""
    per: dict[datetime, int] = {}
    for at, n in stacks:
        per[at] = per.get(at, 0) + n
    return round(max(per.values(), default=0) * 1.1, 1)


class Counts(Out):
    total: int
    active: int
    paused: int


class SuccessRate(Out):
    overall: float
    trend: Literal["up", "down", "stable"]


class RecentActivity(Out):
    runs24h: int = Field(alias="runs24h")
    success24h: int = Field(alias="success24h")
    failure24h: int = Field(alias="failure24h")


class JobHealth(Out):
    job_id: str
    job_name: str
    success_count: int
    failure_count: int


class FilteredMetrics(Out):
    total_runs: int
    success_count: int
    failure_count: int
    avg_duration_ms: float | None


class SourceCount(Out):
    source: str
    count: int


class RunPoint(Out):
    date: str
    success: int
    failure: int


class EndpointPoint(Out):
    date: str
    endpoint_id: str
    endpoint_name: str
    success: int
    failure: int
    total_duration_ms: int


class SessionPoint(Out):
    date: str
    endpoint_id: str
    endpoint_name: str
    session_count: int
    total_tokens: int


class DashboardStats(Out):
    jobs: Counts
    endpoints: Counts
    success_rate: SuccessRate
    recent_activity: RecentActivity
    job_health: list[JobHealth]
    filtered_metrics: FilteredMetrics
    source_distribution: list[SourceCount]
    run_time_series: list[RunPoint]
    endpoint_time_series: list[EndpointPoint]
    endpoint_time_series_max_stacked: float
    ai_session_time_series: list[SessionPoint]
    ai_session_time_series_max_stacked: float
    granularity: Literal["hour", "day"]
    bucket_size_seconds: int

    @classmethod
    def of(cls, d: stats.Dashboard) -> DashboardStats:
        hourly = d.buckets.hourly

        def label(at: datetime) -> str:
            return bucket_label(at, hourly)

        t = d.totals
        return cls(
            jobs=Counts(total=d.jobs.total, active=d.jobs.active, paused=d.jobs.paused),
            endpoints=Counts(
                total=d.endpoints.total, active=d.endpoints.active, paused=d.endpoints.paused
            ),
            success_rate=SuccessRate(overall=d.success_rate.overall, trend=d.success_rate.trend),
            recent_activity=RecentActivity(
                runs24h=d.recent.runs, success24h=d.recent.success, failure24h=d.recent.failed
            ),
            job_health=[
                JobHealth(
                    job_id=j.job_id,
                    job_name=j.job_name,
                    success_count=j.success,
                    failure_count=j.failed,
                )
                for j in d.job_health
            ],
            filtered_metrics=FilteredMetrics(
                total_runs=t.runs,
                success_count=t.success,
                failure_count=t.failed,
                avg_duration_ms=t.avg_duration_ms,
            ),
            source_distribution=[SourceCount(source=s.source, count=s.count) for s in d.sources],
            run_time_series=[
                RunPoint(date=label(p.bucket), success=p.success, failure=p.failed) for p in d.runs
            ],
            endpoint_time_series=[
                EndpointPoint(
                    date=label(p.bucket),
                    endpoint_id=p.endpoint_id,
                    endpoint_name=p.endpoint_name,
                    success=p.success,
                    failure=p.failed,
                    total_duration_ms=p.duration_ms,
                )
                for p in d.endpoint_series
            ],
            endpoint_time_series_max_stacked=headroom(
                (p.bucket, p.success + p.failed) for p in d.endpoint_series
            ),
            ai_session_time_series=[
                SessionPoint(
                    date=label(p.bucket),
                    endpoint_id=p.endpoint_id,
                    endpoint_name=p.endpoint_name,
                    session_count=p.sessions,
                    total_tokens=p.tokens,
                )
                for p in d.session_series
            ],
            ai_session_time_series_max_stacked=headroom(
                (p.bucket, p.sessions) for p in d.session_series
            ),
            granularity="hour" if hourly else "day",
            bucket_size_seconds=int(d.buckets.size.total_seconds()),
        )


class ActivityEvent(Out):
    """A run (`status`, `durationMs`, `source`) or an AI session (`reasoning`, `toolCalls`,
    `tokenUsage`, and `warnings` when there are any); the other kind's fields are absent."""

    type: Literal["run", "session"]
    id: str
    endpoint_id: str
    endpoint_name: str
    timestamp: UtcDatetime
    status: Absent[str] = None
    duration_ms: Absent[int] = None
    source: Absent[str] = None
    reasoning: Absent[str] = None
    tool_calls: Absent[ToolCalls] = None
    token_usage: Absent[int] = None
    warnings: Absent[Warnings] = None

    @classmethod
    def of(cls, e: stats.Event) -> ActivityEvent:
        if isinstance(e, stats.RunEvent):
            return cls(
                type="run",
                id=e.id,
                endpoint_id=e.endpoint_id,
                endpoint_name=e.endpoint_name,
                timestamp=e.at,
                status=e.status,
                duration_ms=e.duration_ms,
                source=e.source,
            )
        return cls(
            type="session",
            id=e.id,
            endpoint_id=e.endpoint_id,
            endpoint_name=e.endpoint_name,
            timestamp=e.at,
            reasoning=e.reasoning,
            tool_calls=e.tool_calls,
            token_usage=e.token_usage,
            warnings=e.warnings or None,
        )


class ActivitySummary(Out):
    runs_count: int
    sessions_count: int
    success_rate: float


class ActivityTimeline(Out):
    events: list[ActivityEvent]
    total: int
    summary: ActivitySummary
    next_cursor: Absent[str] = Field(
        default=None,
        description="Present when there is a next page: pass it as `cursor` (same range and "
        "filters) to read it, as cheap however deep",
    )

    @classmethod
    def of(cls, a: stats.Activity) -> ActivityTimeline:
        runs = a.runs
        ok = sum(1 for e in runs if e.status == "success")
        bad = sum(1 for e in runs if e.status == "failed")
        return cls(
            events=[ActivityEvent.of(e) for e in a.events],
            total=a.total,
            summary=ActivitySummary(
                runs_count=len(runs),
                sessions_count=len(a.events) - len(runs),
                success_rate=stats.success_pct(ok, bad),
            ),
            next_cursor=a.next_cursor,
        )


class Usage(Out):
    """This calendar month (UTC) against the operator's quotas; a null limit is unlimited."""

    period_start: UtcDatetime
    period_end: UtcDatetime = Field(description="When the monthly counts reset")
    endpoints_used: int = Field(description="Endpoints not archived, in jobs not archived")
    endpoints_limit: int | None = Field(default=None, description="QUOTA_MAX_ENDPOINTS")
    runs_this_month: int = Field(
        description="Runs started this month, scheduled and manual (deleting an endpoint "
        "does not give them back)"
    )
    total_runs: int = Field(description="Same as runsThisMonth (reference name)")
    total_runs_limit: int | None = Field(default=None, description="QUOTA_RUNS_PER_MONTH")
    min_interval_ms: int | None = Field(default=None, description="QUOTA_MIN_INTERVAL_MS")
    ai_tokens_this_month: int
    ai_calls_used: int = Field(description="Same as aiTokensThisMonth (reference name)")
    ai_calls_limit: int | None = None


class GraceKey(Out):
    key_prefix: str
    retire_at: UtcDatetime


class KeyInfo(Out):
    has_key: bool
    key_prefix: str | None
    created_at: UtcDatetime | None
    rotated_at: UtcDatetime | None
    grace_keys: list[GraceKey]


class NewKey(Out):
    """The raw key is shown once; store it on the receiving side."""

    raw_key: str
    key_prefix: str
    previous_key_retire_at: UtcDatetime | None = None
