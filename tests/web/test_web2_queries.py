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
# Kept by triggers as the runs are written: analyzed with them, so the plans do not depend
# on when autovacuum gets to them (a plan flip on the daily rollups failed CI once).
ROLLUPS = ("runs_hourly", "runs_daily", "runs_jobs_hourly", "runs_jobs_daily")

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
           :now - g * interval '50 minutes',
           :now - g * interval '50 minutes' + interval '2 seconds', 900
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
    """Two users: the viewer (2 jobs) and a heavy one (40 jobs, 20 times the rows), runs
    every 50 minutes over the 7 days the page shows (so every hour and day the statements
    read has rows in the rollups' statistics: an hour the statistics think empty may be
    planned on any index); returns the viewer's id."""
    async with engine.begin() as conn:
        viewer = await service.create_user(conn, email="viewer@example.com", password=None)
        heavy = await service.create_user(conn, email="heavy@example.com", password=None)
        for user, count in ((viewer.id, 2), (heavy.id, 40)):
            await conn.execute(text(JOBS_SQL), {"user": user, "count": count})
        for statement in ROWS_SQL:
            await conn.execute(text(statement), {"now": now})
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("runs", "ai_sessions", "endpoints", "jobs", *ROLLUPS):
            await conn.execute(text(f"VACUUM ANALYZE {table}"))
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
                # With tables this small the planner may rightly prefer a bitmap or a
                # sequential scan; what is checked is that an index-only path exists.
                await driver.execute("SET enable_bitmapscan = off")
                await driver.execute("SET enable_seqscan = off")
                cur = await driver.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params)
                await driver.execute("RESET enable_bitmapscan")
                await driver.execute("RESET enable_seqscan")
                tables = tuple(prefix.removeprefix("ix_") for prefix in rollup)
                read = _rollup_reads((await cur.fetchone())[0][0]["Plan"], tables)
                assert read, scans
                # A range with no rows (hours after now) may be planned on any index: free.
                assert all(kind == "Index Only Scan" for kind, rows in read if rows), read


def _rollup_reads(node: dict[str, Any], tables: tuple[str, ...]) -> list[tuple[str, float]]:
    """(node type, rows returned) of every scan of the `tables` (by name prefix) in an
    EXPLAIN (ANALYZE, FORMAT JSON) plan, whether by index or by table."""
    found = []
    name = node.get("Index Name") or node.get("Relation Name") or ""
    table = name.removeprefix("ix_").removeprefix("pk_")  # an index's name starts with its table's
    if "Scan" in node["Node Type"] and table.startswith(tables):
        found.append((node["Node Type"], float(node["Actual Rows"]) * node["Actual Loops"]))
    for child in node.get("Plans", []):
        found += _rollup_reads(child, tables)
    return found
