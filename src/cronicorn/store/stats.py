"""Aggregates for the dashboard and the usage meter. All scoped by user, all bucketed in UTC
(the reference aligned hourly buckets to the server's local time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain import month_start
from cronicorn.store.quotas import LIVE_ENDPOINTS, live_endpoints, meter
from cronicorn.store.tables import ai_sessions, endpoints, jobs, runs

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TARGET_POINTS = 24
HOURLY_SIZES = (1, 2, 3, 4, 6, 8, 12)
DAILY_SIZES = (1, 2, 3, 7, 14)


# -- buckets --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Buckets:
    size: timedelta
    hourly: bool
    starts: list[datetime]

    def label(self, at: datetime) -> str:
        at = at.astimezone(UTC)
        return at.strftime("%Y-%m-%d %H:00:00") if self.hourly else at.strftime("%Y-%m-%d")


def choose_buckets(start: datetime, end: datetime) -> Buckets:
    """About 24 UTC-aligned points: hourly sizes up to 14 days, daily sizes beyond."""
    span = end - start
    hourly = span <= timedelta(days=14)
    unit = timedelta(hours=1) if hourly else timedelta(days=1)
    sizes = HOURLY_SIZES if hourly else DAILY_SIZES
    size = unit * sizes[-1]
    for n in sizes:
        if span / (unit * n) <= TARGET_POINTS:
            size = unit * n
            break
    first = floor_to(start, size)
    starts = []
    at = first
    while at < end:
        starts.append(at)
        at += size
    return Buckets(size=size, hourly=hourly, starts=starts)


def floor_to(at: datetime, size: timedelta) -> datetime:
    return EPOCH + ((at - EPOCH) // size) * size


def _bin(size: timedelta, column: Any) -> Any:
    return func.date_bin(size, column, literal(EPOCH))


def _pct(success: int, failure: int) -> float:
    done = success + failure
    return round(100.0 * success / done, 1) if done else 0.0


# -- dashboard stats ------------------------------------------------------------------------
@dataclass(frozen=True)
class StatsQuery:
    user_id: str
    start: datetime
    end: datetime
    now: datetime
    job_id: str | None = None
    source: str | None = None
    endpoint_limit: int = 20


def _run_filter(q: StatsQuery, *, with_source: bool = True) -> ColumnElement[bool]:
    conditions = [runs.c.user_id == q.user_id, runs.c.started_at >= q.start]
    conditions.append(runs.c.started_at < q.end)
    if q.job_id is not None:
        conditions.append(endpoints.c.job_id == q.job_id)
    if with_source and q.source is not None:
        conditions.append(runs.c.source == q.source)
    return and_(*conditions)


def _runs_join() -> Any:
    return runs.join(endpoints, endpoints.c.id == runs.c.endpoint_id)


_OK = runs.c.status == "success"
_FAILED = runs.c.status == "failed"


async def _job_counts(conn: AsyncConnection, user_id: str) -> dict[str, int]:
    row = (
        await conn.execute(
            select(
                func.count().filter(jobs.c.status != "archived"),
                func.count().filter(jobs.c.status == "active"),
                func.count().filter(jobs.c.status == "paused"),
            ).where(jobs.c.user_id == user_id)
        )
    ).one()
    return {"total": int(row[0]), "active": int(row[1]), "paused": int(row[2])}


async def _endpoint_counts(conn: AsyncConnection, user_id: str, now: datetime) -> dict[str, int]:
    paused = and_(endpoints.c.paused_until.is_not(None), endpoints.c.paused_until > now)
    row = (
        await conn.execute(
            select(func.count(), func.count().filter(paused))
            .select_from(LIVE_ENDPOINTS)
            .where(live_endpoints(user_id))
        )
    ).one()
    total, paused_n = int(row[0]), int(row[1])
    return {"total": total, "active": total - paused_n, "paused": paused_n}


async def _rate(conn: AsyncConnection, q: StatsQuery) -> tuple[int, int]:
    row = (
        await conn.execute(
            select(func.count().filter(_OK), func.count().filter(_FAILED))
            .select_from(_runs_join())
            .where(_run_filter(q))
        )
    ).one()
    return int(row[0]), int(row[1])


async def _success_rate(conn: AsyncConnection, q: StatsQuery) -> dict[str, Any]:
    """Overall rate over the range, and its trend against the range just before it of the
    same length (more than 2 points apart is up or down)."""
    ok, bad = await _rate(conn, q)
    span = q.end - q.start
    before = StatsQuery(**{**q.__dict__, "start": q.start - span, "end": q.start})
    prev_ok, prev_bad = await _rate(conn, before)
    overall, previous = _pct(ok, bad), _pct(prev_ok, prev_bad)
    trend = "stable"
    if ok + bad and prev_ok + prev_bad and abs(overall - previous) > 2:
        trend = "up" if overall > previous else "down"
    return {"overall": overall, "trend": trend}


async def _recent(conn: AsyncConnection, user_id: str, now: datetime) -> dict[str, int]:
    row = (
        await conn.execute(
            select(func.count(), func.count().filter(_OK), func.count().filter(_FAILED)).where(
                runs.c.user_id == user_id, runs.c.started_at >= now - timedelta(hours=24)
            )
        )
    ).one()
    return {"runs24h": int(row[0]), "success24h": int(row[1]), "failure24h": int(row[2])}


async def _job_health(conn: AsyncConnection, q: StatsQuery) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(jobs.c.id, jobs.c.name, func.count().filter(_OK), func.count().filter(_FAILED))
        .select_from(_runs_join().join(jobs, jobs.c.id == endpoints.c.job_id))
        .where(_run_filter(q))
        .group_by(jobs.c.id, jobs.c.name)
        .order_by(jobs.c.name, jobs.c.id)
    )
    return [
        {"jobId": r[0], "jobName": r[1], "successCount": int(r[2]), "failureCount": int(r[3])}
        for r in rows
    ]


async def _filtered(conn: AsyncConnection, q: StatsQuery) -> dict[str, Any]:
    row = (
        await conn.execute(
            select(
                func.count(),
                func.count().filter(_OK),
                func.count().filter(_FAILED),
                func.avg(runs.c.duration_ms),
            )
            .select_from(_runs_join())
            .where(_run_filter(q))
        )
    ).one()
    return {
        "totalRuns": int(row[0]),
        "successCount": int(row[1]),
        "failureCount": int(row[2]),
        "avgDurationMs": round(float(row[3]), 1) if row[3] is not None else None,
    }


async def _sources(conn: AsyncConnection, q: StatsQuery) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(runs.c.source, func.count())
        .select_from(_runs_join())
        .where(_run_filter(q, with_source=False))
        .group_by(runs.c.source)
        .order_by(func.count().desc(), runs.c.source)
    )
    return [{"source": r[0], "count": int(r[1])} for r in rows]


async def _run_series(conn: AsyncConnection, q: StatsQuery, b: Buckets) -> list[dict[str, Any]]:
    bucket = _bin(b.size, runs.c.started_at).label("bucket")
    rows = await conn.execute(
        select(bucket, func.count().filter(_OK), func.count().filter(_FAILED))
        .select_from(_runs_join())
        .where(_run_filter(q))
        .group_by(bucket)
    )
    found = {r[0]: (int(r[1]), int(r[2])) for r in rows}
    return [
        {
            "date": b.label(at),
            "success": found.get(at, (0, 0))[0],
            "failure": found.get(at, (0, 0))[1],
        }
        for at in b.starts
    ]


@dataclass
class _Series:
    rows: list[dict[str, Any]] = field(default_factory=list)
    max_stacked: float = 0.0


async def _endpoint_series(conn: AsyncConnection, q: StatsQuery, b: Buckets) -> _Series:
    top = (
        select(runs.c.endpoint_id)
        .select_from(_runs_join())
        .where(_run_filter(q))
        .group_by(runs.c.endpoint_id)
        .order_by(func.count().desc(), runs.c.endpoint_id)
        .limit(q.endpoint_limit)
        .scalar_subquery()
    )
    bucket = _bin(b.size, runs.c.started_at).label("bucket")
    rows = await conn.execute(
        select(
            bucket,
            runs.c.endpoint_id,
            endpoints.c.name,
            func.count().filter(_OK),
            func.count().filter(_FAILED),
            func.coalesce(func.sum(runs.c.duration_ms), 0),
        )
        .select_from(_runs_join())
        .where(_run_filter(q), runs.c.endpoint_id.in_(top))
        .group_by(bucket, runs.c.endpoint_id, endpoints.c.name)
        .order_by(bucket, endpoints.c.name, runs.c.endpoint_id)
    )
    series = _Series()
    stacked: dict[datetime, int] = {}
    for r in rows:
        series.rows.append(
            {
                "date": b.label(r[0]),
                "endpointId": r[1],
                "endpointName": r[2],
                "success": int(r[3]),
                "failure": int(r[4]),
                "totalDurationMs": int(r[5]),
            }
        )
        stacked[r[0]] = stacked.get(r[0], 0) + int(r[3]) + int(r[4])
    series.max_stacked = round(max(stacked.values(), default=0) * 1.1, 1)
    return series


async def _session_series(conn: AsyncConnection, q: StatsQuery, b: Buckets) -> _Series:
    bucket = _bin(b.size, ai_sessions.c.analyzed_at).label("bucket")
    conditions = [
        ai_sessions.c.user_id == q.user_id,
        ai_sessions.c.analyzed_at >= q.start,
        ai_sessions.c.analyzed_at < q.end,
    ]
    if q.job_id is not None:
        conditions.append(endpoints.c.job_id == q.job_id)
    rows = await conn.execute(
        select(
            bucket,
            ai_sessions.c.endpoint_id,
            endpoints.c.name,
            func.count(),
            func.coalesce(func.sum(ai_sessions.c.token_usage), 0),
        )
        .select_from(ai_sessions.join(endpoints, endpoints.c.id == ai_sessions.c.endpoint_id))
        .where(*conditions)
        .group_by(bucket, ai_sessions.c.endpoint_id, endpoints.c.name)
        .order_by(bucket, endpoints.c.name, ai_sessions.c.endpoint_id)
    )
    series = _Series()
    stacked: dict[datetime, int] = {}
    for r in rows:
        series.rows.append(
            {
                "date": b.label(r[0]),
                "endpointId": r[1],
                "endpointName": r[2],
                "sessionCount": int(r[3]),
                "totalTokens": int(r[4]),
            }
        )
        stacked[r[0]] = stacked.get(r[0], 0) + int(r[3])
    series.max_stacked = round(max(stacked.values(), default=0) * 1.1, 1)
    return series


async def dashboard(conn: AsyncConnection, q: StatsQuery) -> dict[str, Any]:
    """Everything the dashboard shows, as the reference's camelCase JSON."""
    buckets = choose_buckets(q.start, q.end)
    endpoint_series = await _endpoint_series(conn, q, buckets)
    session_series = await _session_series(conn, q, buckets)
    return {
        "jobs": await _job_counts(conn, q.user_id),
        "endpoints": await _endpoint_counts(conn, q.user_id, q.now),
        "successRate": await _success_rate(conn, q),
        "recentActivity": await _recent(conn, q.user_id, q.now),
        "jobHealth": await _job_health(conn, q),
        "filteredMetrics": await _filtered(conn, q),
        "sourceDistribution": await _sources(conn, q),
        "runTimeSeries": await _run_series(conn, q, buckets),
        "endpointTimeSeries": endpoint_series.rows,
        "endpointTimeSeriesMaxStacked": endpoint_series.max_stacked,
        "aiSessionTimeSeries": session_series.rows,
        "aiSessionTimeSeriesMaxStacked": session_series.max_stacked,
        "granularity": "hour" if buckets.hourly else "day",
        "bucketSizeSeconds": int(buckets.size.total_seconds()),
    }


# -- activity timeline ----------------------------------------------------------------------
@dataclass(frozen=True)
class ActivityQuery:
    user_id: str
    start: datetime
    end: datetime
    job_id: str | None = None
    event_type: str = "all"
    limit: int = 50
    offset: int = 0


def _run_events(q: ActivityQuery) -> Any:
    conditions = [
        runs.c.user_id == q.user_id,
        runs.c.started_at >= q.start,
        runs.c.started_at < q.end,
    ]
    if q.job_id is not None:
        conditions.append(endpoints.c.job_id == q.job_id)
    return (
        select(
            literal("run").label("type"),
            runs.c.id,
            runs.c.endpoint_id,
            endpoints.c.name.label("endpoint_name"),
            runs.c.started_at.label("ts"),
            runs.c.status,
            runs.c.duration_ms,
            runs.c.source,
            literal(None).label("reasoning"),
            literal(None, type_=ai_sessions.c.tool_calls.type).label("tool_calls"),
            literal(None, type_=ai_sessions.c.token_usage.type).label("token_usage"),
            literal(None, type_=ai_sessions.c.warnings.type).label("warnings"),
        )
        .select_from(_runs_join())
        .where(*conditions)
    )


def _session_events(q: ActivityQuery) -> Any:
    conditions = [
        ai_sessions.c.user_id == q.user_id,
        ai_sessions.c.analyzed_at >= q.start,
        ai_sessions.c.analyzed_at < q.end,
    ]
    if q.job_id is not None:
        conditions.append(endpoints.c.job_id == q.job_id)
    return (
        select(
            literal("session").label("type"),
            ai_sessions.c.id,
            ai_sessions.c.endpoint_id,
            endpoints.c.name.label("endpoint_name"),
            ai_sessions.c.analyzed_at.label("ts"),
            literal(None).label("status"),
            ai_sessions.c.duration_ms,
            literal(None).label("source"),
            ai_sessions.c.reasoning,
            ai_sessions.c.tool_calls,
            ai_sessions.c.token_usage,
            ai_sessions.c.warnings,
        )
        .select_from(ai_sessions.join(endpoints, endpoints.c.id == ai_sessions.c.endpoint_id))
        .where(*conditions)
    )


def _event(m: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": m["type"],
        "id": m["id"],
        "endpointId": m["endpoint_id"],
        "endpointName": m["endpoint_name"],
        "timestamp": m["ts"],
    }
    if m["type"] == "run":
        event.update(status=m["status"], durationMs=m["duration_ms"], source=m["source"])
    else:
        event.update(
            reasoning=m["reasoning"], toolCalls=m["tool_calls"] or [], tokenUsage=m["token_usage"]
        )
        if m["warnings"]:
            event["warnings"] = m["warnings"]
    return event


async def activity(conn: AsyncConnection, q: ActivityQuery) -> dict[str, Any]:
    """Runs and AI sessions merged newest first, paged in SQL (one UNION ALL)."""
    parts = []
    if q.event_type in {"all", "runs"}:
        parts.append(_run_events(q))
    if q.event_type in {"all", "sessions"}:
        parts.append(_session_events(q))
    merged = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    rows = await conn.execute(
        select(merged)
        .order_by(merged.c.ts.desc(), merged.c.id.desc())
        .limit(q.limit)
        .offset(q.offset)
    )
    events = [_event(r._mapping) for r in rows]
    total = await conn.scalar(select(func.count()).select_from(merged))
    run_events = [e for e in events if e["type"] == "run"]
    ok = sum(1 for e in run_events if e["status"] == "success")
    bad = sum(1 for e in run_events if e["status"] == "failed")
    return {
        "events": events,
        "total": int(total or 0),
        "summary": {
            "runsCount": len(run_events),
            "sessionsCount": len(events) - len(run_events),
            "successRate": _pct(ok, bad),
        },
    }


# -- usage ----------------------------------------------------------------------------------
async def usage(conn: AsyncConnection, user_id: str, now: datetime) -> dict[str, Any]:
    """What the user has this calendar month (UTC): live endpoints, and the month's meter:
    runs started (scheduled and test runs, including runs of endpoints deleted since) and AI
    tokens (the planner counts them as it goes, so pruned sessions still count)."""
    live = await _endpoint_counts(conn, user_id, now)
    runs_used, tokens = await meter(conn, user_id, now)
    return {
        "periodStart": month_start(now),
        "endpointsUsed": live["total"],
        "runsThisMonth": runs_used,
        "aiTokensThisMonth": tokens,
    }
