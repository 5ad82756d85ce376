"""Dashboard, usage and signing keys: query and response models."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from cronicorn.schemas.common import Absent, InDatetime, Out, UtcDatetime
from cronicorn.schemas.history import ToolCalls, Warnings

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


class ActivitySummary(Out):
    runs_count: int
    sessions_count: int
    success_rate: float


class ActivityTimeline(Out):
    events: list[ActivityEvent]
    total: int
    summary: ActivitySummary


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
