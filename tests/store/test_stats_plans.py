"""The dashboard's and endpoint health's reads do not grow with the runs of a busy user: the
runs per job look up the user's endpoints once, not once per run of the range's raw edge;
the busiest endpoints' names are looked up for the endpoints shown, not for every endpoint
with runs; the per-endpoint series and health's whole hours and days are index-only scans
of the rollups' primary keys (migration 0015). EXPLAIN ANALYZE on a database where a week
of rollup rows per endpoint makes each of those a visible difference."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import NOW
from cronicorn.store import runs as run_store
from cronicorn.store import stats

# On the half hour: the 7-day range's first partial hour holds 30 minutes of runs.
AT = NOW.replace(minute=30, second=0, microsecond=0)
# The viewer: 2 jobs of 6 endpoints, a run every 15 minutes for 8 days (1 in 4 failed);
# another user: 2,000 endpoints (reading them all is visible), 100 with a run every 2 hours
# (the same hours, in the same rollups).
SEED_SQL = (
    """
    INSERT INTO jobs (id, user_id, name, status, created_at, updated_at)
    SELECT 'j-' || u.id || '-' || g, u.id, 'job ' || g, 'active', :now, :now
    FROM users u, generate_series(1, 2) g WHERE u.id IN (:viewer, :other)
    """,
    """
    INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms, next_run_at)
    SELECT 'e-' || j.id || '-' || g, j.id, j.user_id, 'e' || g, 'http://x/' || g, 60000, :now
    FROM jobs j, generate_series(1, CASE WHEN j.user_id = :viewer THEN 6 ELSE 1000 END) g
    """,
    """
    INSERT INTO runs (id, endpoint_id, user_id, status, source, due_at, started_at,
                      finished_at, duration_ms)
    SELECT 'r-' || e.id || '-' || g, e.id, e.user_id,
           CASE WHEN g % 4 = 0 THEN 'failed' ELSE 'success' END, 'baseline-interval',
           :now - g * s.step, :now - g * s.step + interval '1 second',
           :now - g * s.step + interval '2 seconds', 500 + g % 7
    FROM endpoints e
    JOIN (SELECT id FROM endpoints ORDER BY user_id = :viewer DESC, id LIMIT 112) busy USING (id)
    CROSS JOIN LATERAL (SELECT CASE WHEN e.user_id = :viewer THEN 15 ELSE 120 END AS minutes) m
    CROSS JOIN LATERAL (SELECT m.minutes * interval '1 minute' AS step) s
    CROSS JOIN LATERAL generate_series(1, 8 * 24 * 60 / m.minutes) g
    """,
)
SEEDED = ("jobs", "endpoints", "runs", "runs_hourly", "runs_daily", "runs_jobs_hourly")
SEEDED += ("runs_jobs_daily", "runs_hourly_users")
JOB_RUNS_SQL = """
SELECT e.job_id, count(*) FILTER (WHERE r.status = 'success'),
       count(*) FILTER (WHERE r.status = 'failed')
FROM runs r JOIN endpoints e ON e.id = r.endpoint_id
WHERE r.user_id = :viewer AND r.started_at >= :start AND r.started_at < :now
GROUP BY 1 ORDER BY 1
"""


async def _seed(engine: AsyncEngine, viewer: str, other: str) -> None:
    async with engine.begin() as conn:
        for statement in SEED_SQL:
            await conn.execute(text(statement), {"viewer": viewer, "other": other, "now": AT})
    async with engine.connect() as conn:  # autovacuum's statistics
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"ANALYZE {', '.join(SEEDED)}"))


def _scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node] if "Scan" in node["Node Type"] else []
    for child in node.get("Plans", []):
        found += _scans(child)
    return found


def _examined(scans: list[dict[str, Any]], relation: str) -> int:
    """Rows the scans of `relation` looked at (returned or filtered out), over all loops."""
    return sum(
        round((s.get("Actual Rows", 0) + s.get("Rows Removed by Filter", 0)) * s["Actual Loops"])
        for s in scans
        if s.get("Relation Name") == relation
    )


def _of(scans: list[dict[str, Any]], relation: str) -> list[tuple[str, str, int]]:
    """(node type, index, loops) of the scans of `relation`."""
    return [
        (s["Node Type"], s.get("Index Name", ""), int(s.get("Actual Loops", 1)))
        for s in scans
        if s.get("Relation Name") == relation
    ]


# Whether an index-only scan is preferred depends on the visibility map (autovacuum's, which
# a test server shared with other sessions may not let VACUUM set), so the rollup reads are
# planned with the other ways of reading the rollups out of the way (in a transaction rolled
# back): the scan left is index-only only if the key covers what the statement reads.
ROLLUP_KEYS_ONLY = (
    "SET LOCAL enable_seqscan = off",
    "SET LOCAL enable_bitmapscan = off",
    "DROP INDEX ix_runs_hourly_hour, ix_runs_hourly_user_id_hour",
    "DROP INDEX ix_runs_daily_day, ix_runs_daily_user_id_day",
)


async def _explained(
    engine: AsyncEngine, statements: list[tuple[str, Any]], *, analyze: bool = True
) -> list[Any]:
    plans = []
    async with engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        for setting in () if analyze else ROLLUP_KEYS_ONLY:
            await driver.execute(setting)
        options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
        for statement, params in statements:
            cur = await driver.execute(f"EXPLAIN ({options}) {statement}", params)
            plans.append((statement, _scans((await cur.fetchone())[0][0]["Plan"])))
        await driver.rollback()
    return plans


async def test_dashboard_reads_endpoints_once_and_rollup_keys_only(
    engine: AsyncEngine, alice: str, bob: str
) -> None:
    await _seed(engine, alice, bob)
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            captured.append((statement, params))

    start = AT - timedelta(days=7)
    query = stats.StatsQuery(alice, start, AT, AT, endpoint_limit=5)
    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with engine.connect() as conn:
            shown = await stats.dashboard(conn, query)
            one_source = stats.StatsQuery(alice, start, AT, AT, source="baseline-interval")
            assert (await stats.dashboard(conn, one_source)).job_health == shown.job_health
            params = {"viewer": alice, "start": start, "now": AT}
            expected = (await conn.execute(text(JOB_RUNS_SQL), params)).all()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    assert [(j.job_id, j.success, j.failed) for j in shown.job_health] == [
        tuple(row) for row in expected
    ]
    assert len({p.endpoint_id for p in shown.endpoint_series}) == 5
    plans = await _explained(engine, captured)

    per_job = [scans for statement, scans in plans if "FROM runs_jobs_" in statement]
    assert len(per_job) == 1
    # the raw edge's 24 runs, summed per endpoint, meet the viewer's 12 endpoints in one scan
    # (not a lookup per run, nor the whole table)
    assert all(loops == 1 for *_, loops in _of(per_job[0], "endpoints")), per_job[0]
    assert _examined(per_job[0], "endpoints") <= 12, _of(per_job[0], "endpoints")

    per_source = [scans for statement, scans in plans if "GROUP BY e.job_id" in statement]
    assert len(per_source) == 1  # one source's runs per job, from the per-endpoint rollups
    assert all(loops == 1 for *_, loops in _of(per_source[0], "endpoints")), per_source[0]
    assert _examined(per_source[0], "endpoints") <= 12, _of(per_source[0], "endpoints")
    assert _examined(per_source[0], "jobs") <= 2 * 2, _of(per_source[0], "jobs")

    top = [scans for statement, scans in plans if "LIMIT %(top)s" in statement]
    assert len(top) == 2  # with and without the source; the first names 5 of 12
    # names for the 5 endpoints shown, not for the 12 with runs
    assert _examined(top[0], "endpoints") <= 5, _of(top[0], "endpoints")

    series = [i for i, (statement, _) in enumerate(plans) if "h.endpoint_id = ANY(" in statement]
    assert len(series) == 2  # with and without the source
    ((_, keyed),) = await _explained(engine, [captured[series[0]]], analyze=False)
    rolled = _of(keyed, "runs_hourly")
    assert rolled == [("Index Only Scan", "pk_runs_hourly", 1)], rolled

    await _health_reads_rollup_keys_only(engine, alice)


async def _health_reads_rollup_keys_only(engine: AsyncEngine, alice: str) -> None:
    """Health's whole hours and days are index-only scans of the rollups' keys (0015)."""
    endpoint_id = f"e-j-{alice}-1-1"
    sql = re.sub(r"(?<!:):(\w+)", r"%(\1)s", run_store._HEALTH_SQL.text)
    for window in (timedelta(hours=24), timedelta(days=7), timedelta(hours=30, minutes=10)):
        since = AT - window
        params = {"endpoint_id": endpoint_id, "user_id": alice, **run_store.health_spans(since)}
        ((_, scans),) = await _explained(engine, [(sql, params)], analyze=False)
        for table in ("runs_hourly", "runs_daily"):
            kinds = _of(scans, table)
            assert kinds == [("Index Only Scan", f"pk_{table}", 1)], (window, kinds)
        async with engine.connect() as conn:
            summary = await run_store.health(conn, alice, endpoint_id, since)
        assert summary.success_count + summary.failure_count == window // timedelta(minutes=15)
