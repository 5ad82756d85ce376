"""The AI planner's SQL: which endpoints to analyse (leases), what the tools read, sessions,
and the monthly token meter.

Claiming mirrors `claims`: one `UPDATE … WHERE endpoint_id IN (SELECT … FOR UPDATE SKIP
LOCKED)` sets a lease on `endpoint_analysis` rows, so any number of planner processes share
the work and an endpoint is never analysed twice at once. Leases expire by the database's
clock; the planner's own clock (injected) decides what "due" means. The leases live in their
own table: the planner never locks an `endpoints` row the scheduler wants to claim.

Everything here runs as the system, not as a user; callers scope writes to the analysed
endpoint's owner (the tools pass its `user_id` to `store.endpoints`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping, and_, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain import month_start
from cronicorn.store.endpoints import EndpointRow, endpoint_from
from cronicorn.store.tables import (
    ai_sessions,
    ai_suggestions,
    endpoint_analysis,
    endpoints,
    jobs,
    monthly_usage,
    runs,
)

# -- claiming -------------------------------------------------------------------------------
ENROL_SQL = text(
    """
    INSERT INTO endpoint_analysis (endpoint_id, user_id)
    SELECT e.id, e.user_id FROM endpoints e
    WHERE e.last_run_at >= :since AND e.archived_at IS NULL
    ON CONFLICT (endpoint_id) DO NOTHING
    """
)
"""Endpoints that ran within the lookback window get a bookkeeping row (first analysis)."""

CLAIM_SQL = text(
    """
    WITH job_news AS (
        SELECT job_id, max(last_run_at) AS latest FROM endpoints
        WHERE archived_at IS NULL
        GROUP BY job_id
    ), picked AS (
        SELECT a.endpoint_id
        FROM endpoint_analysis a
        JOIN endpoints e ON e.id = a.endpoint_id
        JOIN jobs j ON j.id = e.job_id
        JOIN job_news n ON n.job_id = e.job_id
        WHERE (a.lease_until IS NULL OR a.lease_until < now())
          AND e.archived_at IS NULL
          AND j.status = 'active'
          AND (CASE WHEN e.ai_mode = 'inherit' THEN j.ai_mode ELSE e.ai_mode END) <> 'off'
          AND (
            a.last_analyzed_at IS NULL
            OR (
              n.latest > a.last_analyzed_at
              AND (
                a.next_analysis_at IS NULL
                OR a.next_analysis_at <= :now
                OR e.failure_count > a.failure_count_seen
                OR (e.failure_count = 0 AND a.failure_count_seen > 0)
              )
            )
          )
        ORDER BY a.next_analysis_at NULLS FIRST, a.endpoint_id
        LIMIT :limit
        FOR UPDATE OF a SKIP LOCKED
    )
    UPDATE endpoint_analysis a
    SET lease_owner = :token, lease_until = now() + make_interval(secs => :lease_s)
    FROM picked WHERE a.endpoint_id = picked.endpoint_id
    RETURNING a.endpoint_id
    """
)
"""Endpoints to analyse now: never analysed, or with a finished run in the job (its own, or
a sibling's: a paused endpoint can be resumed on its siblings' news) since the last analysis
and either due, failing more, or recovered (failures back to zero: its status changed).
Reads only `endpoints` rows (`last_run_at`, `failure_count`, which the scheduler keeps), never
the runs table, so a claim costs one pass over the endpoints however long their history."""

RENEW_SQL = text(
    """
    UPDATE endpoint_analysis SET lease_until = now() + make_interval(secs => :lease_s)
    WHERE endpoint_id = :endpoint_id AND lease_owner = :token
    """
)


async def claim(
    conn: AsyncConnection, *, token: str, now: datetime, since: datetime, limit: int, lease_s: float
) -> list[str]:
    """Lease up to `limit` endpoints to analyse; their ids."""
    await conn.execute(ENROL_SQL, {"since": since})
    result = await conn.execute(
        CLAIM_SQL, {"now": now, "limit": limit, "token": token, "lease_s": lease_s}
    )
    return [row[0] for row in result]


async def renew(conn: AsyncConnection, *, token: str, endpoint_id: str, lease_s: float) -> bool:
    result = await conn.execute(
        RENEW_SQL, {"token": token, "endpoint_id": endpoint_id, "lease_s": lease_s}
    )
    return bool(result.rowcount)


@dataclass(frozen=True)
class Seen:
    """What the session saw, so the next claim can tell what changed since."""

    analyzed_at: datetime
    next_analysis_at: datetime
    failure_count: int
    last_status: str | None


async def release(
    conn: AsyncConnection, *, token: str, endpoint_id: str, seen: Seen | None
) -> None:
    """Drop the lease (compare-and-set on its token); with `seen`, record the analysis."""
    values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
    if seen is not None:
        values |= {
            "last_analyzed_at": seen.analyzed_at,
            "next_analysis_at": seen.next_analysis_at,
            "failure_count_seen": seen.failure_count,
            "last_status_seen": seen.last_status,
        }
    await conn.execute(
        update(endpoint_analysis)
        .where(
            endpoint_analysis.c.endpoint_id == endpoint_id,
            endpoint_analysis.c.lease_owner == token,
        )
        .values(**values)
    )


# -- reads for the prompt and the tools -----------------------------------------------------
@dataclass(frozen=True)
class Context:
    endpoint: EndpointRow
    ai_mode: str
    """Effective mode: the endpoint's, or its job's when it inherits."""
    job_name: str
    job_description: str | None
    job_status: str


async def context(conn: AsyncConnection, endpoint_id: str) -> Context | None:
    """The endpoint and its job, or None when it was deleted."""
    row = (
        await conn.execute(
            select(
                endpoints,
                jobs.c.name.label("job_name"),
                jobs.c.description.label("job_description"),
                jobs.c.status.label("job_status"),
                jobs.c.ai_mode.label("job_ai_mode"),
            )
            .join(jobs, jobs.c.id == endpoints.c.job_id)
            .where(endpoints.c.id == endpoint_id)
        )
    ).first()
    if row is None:
        return None
    m = row._mapping
    mode = m["ai_mode"] if m["ai_mode"] != "inherit" else m["job_ai_mode"]
    return Context(
        endpoint=endpoint_from(m),
        ai_mode=mode,
        job_name=m["job_name"],
        job_description=m["job_description"],
        job_status=m["job_status"],
    )


async def siblings(conn: AsyncConnection, endpoint: EndpointRow) -> list[EndpointRow]:
    """The other live endpoints of the same job and owner."""
    rows = await conn.execute(
        select(endpoints)
        .where(
            endpoints.c.job_id == endpoint.job_id,
            endpoints.c.user_id == endpoint.user_id,
            endpoints.c.id != endpoint.id,
            endpoints.c.archived_at.is_(None),
        )
        .order_by(endpoints.c.name, endpoints.c.id)
    )
    return [endpoint_from(r._mapping) for r in rows]


RUN_COLUMNS = (
    runs.c.id,
    runs.c.endpoint_id,
    runs.c.status,
    runs.c.source,
    runs.c.started_at,
    runs.c.duration_ms,
    runs.c.status_code,
    runs.c.response_body,
    runs.c.response_text,
    runs.c.response_truncated,
    runs.c.error_message,
)


async def finished_runs(
    conn: AsyncConnection, endpoint_id: str, *, limit: int, offset: int = 0
) -> list[RowMapping]:
    """Newest first, finished runs only (a run in flight has nothing to read yet)."""
    rows = await conn.execute(
        select(*RUN_COLUMNS)
        .where(runs.c.endpoint_id == endpoint_id, runs.c.status != "running")
        .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [r._mapping for r in rows]


async def latest_of(conn: AsyncConnection, endpoint_ids: list[str]) -> dict[str, RowMapping]:
    """The newest finished run of each endpoint (one statement, DISTINCT ON)."""
    if not endpoint_ids:
        return {}
    rows = await conn.execute(
        select(*RUN_COLUMNS)
        .ext(distinct_on(runs.c.endpoint_id))
        .where(runs.c.endpoint_id.in_(endpoint_ids), runs.c.status != "running")
        .order_by(runs.c.endpoint_id, runs.c.started_at.desc(), runs.c.id.desc())
    )
    return {r._mapping["endpoint_id"]: r._mapping for r in rows}


async def health(conn: AsyncConnection, endpoint_id: str, now: datetime) -> dict[str, Any]:
    """Success counts over 1 h / 4 h / 24 h and the 24 h mean duration."""
    windows = {"1h": 1, "4h": 4, "24h": 24}
    cols = []
    for name, hours in windows.items():
        since = now - timedelta(hours=hours)
        recent = runs.c.started_at >= since
        cols.append(func.count().filter(and_(recent, runs.c.status == "success")).label(f"s{name}"))
        cols.append(func.count().filter(and_(recent, runs.c.status == "failed")).label(f"f{name}"))
    cols.append(func.avg(runs.c.duration_ms).label("avg_ms"))
    row = (
        (
            await conn.execute(
                select(*cols).where(
                    runs.c.endpoint_id == endpoint_id,
                    runs.c.started_at >= now - timedelta(hours=24),
                    runs.c.status != "running",
                )
            )
        )
        .one()
        ._mapping
    )
    out: dict[str, Any] = {
        name: {"success": int(row[f"s{name}"]), "failed": int(row[f"f{name}"])} for name in windows
    }
    out["avgDurationMs"] = None if row["avg_ms"] is None else round(float(row["avg_ms"]))
    return out


async def last_session(conn: AsyncConnection, endpoint_id: str) -> RowMapping | None:
    row = (
        await conn.execute(
            select(
                ai_sessions.c.analyzed_at,
                ai_sessions.c.reasoning,
                ai_sessions.c.tool_calls,
                ai_sessions.c.outcome,
            )
            .where(ai_sessions.c.endpoint_id == endpoint_id, ai_sessions.c.outcome != "running")
            .order_by(ai_sessions.c.analyzed_at.desc())
            .limit(1)
        )
    ).first()
    return row._mapping if row is not None else None


# -- sessions -------------------------------------------------------------------------------
async def start_session(
    conn: AsyncConnection,
    *,
    session_id: str,
    endpoint: EndpointRow,
    model: str | None,
    now: datetime,
    outcome: str = "running",
) -> None:
    await conn.execute(
        insert(ai_sessions).values(
            id=session_id,
            endpoint_id=endpoint.id,
            user_id=endpoint.user_id,
            analyzed_at=now,
            model=model,
            endpoint_failure_count=endpoint.failure_count,
            outcome=outcome,
        )
    )


async def finish_session(conn: AsyncConnection, session_id: str, values: dict[str, Any]) -> bool:
    """Write the session's result; False when the endpoint (and so the session) is gone."""
    result = await conn.execute(
        update(ai_sessions).where(ai_sessions.c.id == session_id).values(**values)
    )
    return bool(result.rowcount)


async def add_tokens(conn: AsyncConnection, user_id: str, now: datetime, tokens: int) -> None:
    """Count tokens on the user's meter for this UTC month."""
    if tokens <= 0:
        return
    stmt = insert(monthly_usage).values(
        user_id=user_id, period_start=month_start(now), runs=0, ai_tokens=tokens
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[monthly_usage.c.user_id, monthly_usage.c.period_start],
            set_={"ai_tokens": monthly_usage.c.ai_tokens + tokens},
        )
    )


async def tokens_this_month(conn: AsyncConnection, user_id: str, now: datetime) -> int:
    value = await conn.scalar(
        select(monthly_usage.c.ai_tokens).where(
            monthly_usage.c.user_id == user_id, monthly_usage.c.period_start == month_start(now)
        )
    )
    return int(value or 0)


# -- retention ------------------------------------------------------------------------------
async def prune_sessions(conn: AsyncConnection, cutoff: datetime, *, limit: int = 5000) -> int:
    """Delete up to `limit` sessions analysed before `cutoff`, oldest first."""
    oldest = (
        select(ai_sessions.c.id)
        .where(ai_sessions.c.analyzed_at < cutoff)
        .order_by(ai_sessions.c.analyzed_at)
        .limit(limit)
        .scalar_subquery()
    )
    result = await conn.execute(delete(ai_sessions).where(ai_sessions.c.id.in_(oldest)))
    return int(result.rowcount or 0)


async def close_stale_sessions(conn: AsyncConnection, before: datetime) -> int:
    """Sessions still `running` that began before `before`: their planner died."""
    result = await conn.execute(
        update(ai_sessions)
        .where(ai_sessions.c.outcome == "running", ai_sessions.c.analyzed_at < before)
        .values(outcome="abandoned", error="planner stopped before the session ended")
    )
    return int(result.rowcount or 0)


async def lapse_suggestions(conn: AsyncConnection, now: datetime) -> int:
    result = await conn.execute(
        update(ai_suggestions)
        .where(ai_suggestions.c.status == "pending", ai_suggestions.c.expires_at <= now)
        .values(status="expired", decided_at=now)
    )
    return int(result.rowcount or 0)
