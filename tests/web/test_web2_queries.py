"""The dashboard's queries read indexes, not whole tables: every statement the page runs
(counts, stats, lateness, the activity timeline) is captured as sent, then EXPLAINed with the
same parameters against a database where one other user owns most of the rows. A query
that lost its index would scan `runs` or `ai_sessions` sequentially and fail here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.auth import service
from cronicorn.store import jobs as job_store
from cronicorn.store import stats
from support import plan_scans

pytestmark = pytest.mark.slow

# The tables that grow without bound (millions of runs); jobs and endpoints are a few
# hundred rows per user, where a sequential scan is the planner's right call.
BIG_TABLES = {"runs", "ai_sessions"}

JOBS_SQL = """
INSERT INTO jobs (id, user_id, name, status, created_at, updated_at)
SELECT 'j-' || :user || '-' || g, :user, 'job ' || g, 'active', now(), now()
FROM generate_series(1, :count) g
"""
ROWS_SQL = (
    """
    INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms, next_run_at)
    SELECT 'e-' || j.id || '-' || g, j.id, j.user_id, 'e' || g, 'http://x/' || g, 60000, now()
    FROM jobs j, generate_series(1, 5) g
    """,
    """
    INSERT INTO runs (id, endpoint_id, user_id, status, source, due_at, started_at, duration_ms)
    SELECT 'r-' || e.id || '-' || g, e.id, e.user_id,
           CASE WHEN g % 4 = 0 THEN 'failed' ELSE 'success' END, 'baseline-interval',
           :now - g * interval '1 minute',
           :now - g * interval '1 minute' + interval '2 seconds', 900
    FROM endpoints e, generate_series(1, 200) g
    """,
    """
    INSERT INTO ai_sessions (id, endpoint_id, user_id, analyzed_at, token_usage, outcome)
    SELECT 's-' || e.id || '-' || g, e.id, e.user_id, :now - g * interval '1 hour', 100,
           'applied'
    FROM endpoints e, generate_series(1, 20) g
    """,
)


async def _seed(engine: AsyncEngine, now: datetime) -> str:
    """Two users: the viewer (2 jobs) and a heavy one (40 jobs, 20 times the rows);
    returns the viewer's id."""
    async with engine.begin() as conn:
        viewer = await service.create_user(conn, email="viewer@example.com", password=None)
        heavy = await service.create_user(conn, email="heavy@example.com", password=None)
        for user, count in ((viewer.id, 2), (heavy.id, 40)):
            await conn.execute(text(JOBS_SQL), {"user": user, "count": count})
        for statement in ROWS_SQL:
            await conn.execute(text(statement), {"now": now})
    async with engine.connect() as conn:
        for table in ("runs", "ai_sessions", "endpoints", "jobs"):
            await conn.execute(text(f"ANALYZE {table}"))
        await conn.commit()
    return viewer.id


async def test_every_dashboard_query_reads_indexes(engine: AsyncEngine) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    user_id = await _seed(engine, now)
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            captured.append((statement, params))

    start = now - timedelta(days=7)
    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with engine.connect() as conn:
            jobs = await job_store.list_with_counts(conn, user_id)
            job_id = jobs[0][0].id
            for job, series in ((None, True), (job_id, True), (None, False), (job_id, False)):
                query = stats.StatsQuery(user_id, start, now, now, job_id=job, series=series)
                data = await stats.dashboard(conn, query)
                for kind in ("all", "runs", "sessions"):
                    activity = stats.ActivityQuery(user_id, start, now, job_id=job, event_type=kind)
                    await stats.activity(conn, activity)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    assert data.totals.runs == 5 * 200  # one job of the viewer's
    assert len(captured) >= 20

    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        for statement, params in captured:
            cur = await driver.execute(f"EXPLAIN (FORMAT JSON) {statement}", params)
            plan = (await cur.fetchone())[0][0]["Plan"]
            scans = plan_scans(plan)
            seq = [rel for kind, rel in scans if kind == "Seq Scan" and rel in BIG_TABLES]
            assert not seq, f"sequential scan of {seq} in:\n{statement}\n{scans}"
            rollup = (
                ("ix_runs_jobs_",)  # a user's runs per job (0012)
                if "FROM runs_jobs_" in statement
                else ("ix_runs_daily", "ix_runs_hourly")  # per-endpoint sums (0011)
                if "h.success AS success" in statement
                else None
            )
            if rollup and job_id not in params.values():
                # the columns summed are in the (user_id, day|hour) indexes: no heap visits
                covered = [s for s in scans if s[1].startswith(rollup)]
                assert covered, scans
                assert all(kind == "Index Only Scan" for kind, _ in covered), scans
