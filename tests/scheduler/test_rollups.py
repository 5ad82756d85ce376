"""Hourly run rollups (migration 0010): kept exact by every writer of runs (the scheduler's
batch write, skipped slots, detached runs, both take-overs, run now), untouched by retention,
and the dashboard's numbers from them equal a plain scan of the runs, edges and running runs
included; the 7-day dashboard reads at most its two edge hours from `runs`."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from aiohttp import web
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.ids import new_id
from cronicorn.scheduler.retention import RetentionPolicy, prune_once
from cronicorn.schemas.dashboard import DashboardStats, bucket_label
from cronicorn.store import claims, detached_runs, stats
from cronicorn.store.runs import record_test_run
from cronicorn.store.tables import runs
from scheduler.conftest import Rows, running_scheduler, serve_target, utc
from support import until

# What the rollups must hold: a GROUP BY over the finished runs, written out plainly.
EXPECTED_SQL = """
SELECT endpoint_id, date_trunc('hour', started_at AT TIME ZONE 'UTC') AS hour, source,
       count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status = 'failed'),
       count(*) FILTER (WHERE status = 'skipped'), count(duration_ms),
       coalesce(sum(duration_ms), 0), count(due_at) FILTER (WHERE status <> 'skipped'),
       round(coalesce(sum(greatest(extract(epoch FROM started_at - due_at) * 1000, 0))
                      FILTER (WHERE status <> 'skipped'), 0)::numeric, 3)
FROM runs WHERE status <> 'running' GROUP BY 1, 2, 3
"""
ROLLED_SQL = """
SELECT endpoint_id, hour AT TIME ZONE 'UTC', source, success, failed, skipped, timed,
       duration_ms, scheduled, round(late_ms::numeric, 3)
FROM runs_hourly WHERE success + failed + skipped > 0
"""
DAILY_SQL = """
SELECT endpoint_id, day AT TIME ZONE 'UTC', source, success, failed, skipped, timed, duration_ms
FROM runs_daily WHERE success + failed + skipped > 0
"""
EXPECTED_DAILY_SQL = """
SELECT endpoint_id, date_trunc('day', started_at AT TIME ZONE 'UTC'), source,
       count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status = 'failed'),
       count(*) FILTER (WHERE status = 'skipped'), count(duration_ms), coalesce(sum(duration_ms), 0)
FROM runs WHERE status <> 'running' GROUP BY 1, 2, 3
"""
USERS_SQL = """
SELECT user_id, hour AT TIME ZONE 'UTC', source, sum(success), sum(failed), sum(skipped),
       sum(timed), sum(duration_ms), sum(scheduled)
FROM runs_hourly_users GROUP BY 1, 2, 3 HAVING sum(success + failed + skipped) > 0
"""
EXPECTED_USERS_SQL = """
SELECT user_id, date_trunc('hour', started_at AT TIME ZONE 'UTC'), source,
       count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status = 'failed'),
       count(*) FILTER (WHERE status = 'skipped'), count(duration_ms),
       coalesce(sum(duration_ms), 0), count(due_at) FILTER (WHERE status <> 'skipped')
FROM runs WHERE status <> 'running' GROUP BY 1, 2, 3
"""
_JOBS_ROLLED = """
SELECT job_id, {unit} AT TIME ZONE 'UTC', sum(success), sum(failed) FROM {table}
GROUP BY 1, 2 HAVING sum(success + failed) > 0
"""
_JOBS_EXPECTED = """
SELECT e.job_id, date_trunc('{unit}', r.started_at AT TIME ZONE 'UTC'),
       count(*) FILTER (WHERE r.status = 'success'), count(*) FILTER (WHERE r.status = 'failed')
FROM runs r JOIN endpoints e ON e.id = r.endpoint_id
WHERE r.status IN ('success', 'failed') GROUP BY 1, 2
"""
JOBS_SQL = _JOBS_ROLLED.format(unit="hour", table="runs_jobs_hourly")
EXPECTED_JOBS_SQL = _JOBS_EXPECTED.format(unit="hour")
JOBS_DAILY_SQL = _JOBS_ROLLED.format(unit="day", table="runs_jobs_daily")
EXPECTED_JOBS_DAILY_SQL = _JOBS_EXPECTED.format(unit="day")


async def _set(
    engine: AsyncEngine, sql: str, params: dict[str, Any] | None = None
) -> set[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return {tuple(r) for r in await conn.execute(text(sql), params or {})}


async def _rollups(engine: AsyncEngine) -> list[set[tuple[Any, ...]]]:
    tables = (ROLLED_SQL, USERS_SQL, DAILY_SQL, JOBS_SQL, JOBS_DAILY_SQL)
    return [await _set(engine, sql) for sql in tables]


async def _stale_running(
    engine: AsyncEngine, endpoint: str, user: str, *, run_lease: str | None
) -> str:
    """A `running` run whose worker died: leased by the endpoint (run_lease None) or by
    itself (a detached run), the lease expired a minute ago."""
    run_id = new_id()
    past = utc(seconds=-60)
    async with engine.begin() as conn:
        if run_lease is None:
            await conn.execute(
                text(
                    "UPDATE endpoints SET lease_owner = 'dead#1', lease_until = :past,"
                    " next_run_at = :later WHERE id = :id"
                ),
                {"past": past, "later": utc(hours=1), "id": endpoint},
            )
        await conn.execute(
            runs.insert().values(
                id=run_id,
                endpoint_id=endpoint,
                user_id=user,
                status="running",
                source="baseline-interval",
                due_at=utc(seconds=-90),
                started_at=utc(seconds=-89),
                lease_owner=run_lease,
                lease_until=past if run_lease else None,
            )
        )
    return run_id


async def test_rollups_equal_a_group_by_after_every_writer_and_outlive_retention(
    database_url: str, engine: AsyncEngine
) -> None:
    rows = await Rows(engine).setup()

    async def slow(request: web.Request) -> web.StreamResponse:
        import asyncio

        await asyncio.sleep(1.6)
        return web.json_response({"slow": True})

    async with serve_target({"/slow/{name}": slow}) as target:
        ok = await rows.endpoints([target.url("/ok/a"), target.url("/ok/b")])
        failing = await rows.endpoint(target.url("/nope"))
        skipper = await rows.endpoint(target.url("/slow/skip"))
        allowed = await rows.endpoint(target.url("/slow/allow"), overlap="allow", max_concurrent=2)
        async with running_scheduler(database_url, engine, worker_id="w"):

            async def mixed() -> bool:
                return (
                    await rows.run_count(ok[0], status="success") >= 3
                    and await rows.run_count(failing, status="failed") >= 2
                    and await rows.run_count(skipper, status="skipped") >= 1
                    and await rows.run_count(allowed, status="success") >= 2
                )

            await until(mixed, timeout=40, what="successes, failures, skips, detached runs")
    # take-overs: an endpoint's run and a detached run whose workers died
    lost = await rows.endpoint("http://127.0.0.1:9/lost", next_run_at=utc(hours=1))
    lost_run = await _stale_running(engine, lost, rows.user_id, run_lease=None)
    detached = await _stale_running(engine, allowed, rows.user_id, run_lease="dead#2@1")
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        now = datetime.now(UTC)
        taken = await claims.take_over(conn, lease="t#1", now=now, lease_s=30, dead_owners=False)
        assert [t.run_id for t in taken] == [lost_run]
        assert await detached_runs.take_over(conn, now=now, dead_owners=False) == [detached]
    async with engine.begin() as conn:  # run now
        await record_test_run(
            conn,
            user_id=rows.user_id,
            endpoint_id=ok[1],
            started_at=utc(seconds=-1),
            finished_at=utc(),
            outcome={"status": "failed", "duration_ms": 7, "error_message": "boom"},
        )
    expected = await _set(engine, EXPECTED_SQL)
    statuses = {(r[3] > 0, r[4] > 0, r[5] > 0) for r in expected}
    assert any(s[0] for s in statuses)
    assert any(s[1] for s in statuses)
    assert any(s[2] for s in statuses)
    assert await _set(engine, ROLLED_SQL) == expected
    assert await _set(engine, USERS_SQL) == await _set(engine, EXPECTED_USERS_SQL)
    assert await _set(engine, DAILY_SQL) == await _set(engine, EXPECTED_DAILY_SQL)
    assert await _set(engine, JOBS_SQL) == await _set(engine, EXPECTED_JOBS_SQL)
    assert await _set(engine, JOBS_DAILY_SQL) == await _set(engine, EXPECTED_JOBS_DAILY_SQL)

    before = await _rollups(engine)
    query = stats.StatsQuery(rows.user_id, utc(hours=-2), utc(hours=1), utc())
    async with engine.connect() as conn:
        shown = await stats.dashboard(conn, query)
    assert shown.totals.runs == sum(r[3] + r[4] for r in expected)
    async with engine.begin() as conn:  # older than rollup retention: goes
        await conn.execute(
            text(
                "INSERT INTO runs_hourly_users (user_id, hour, source, writer, success)"
                " VALUES (:user, :hour, 'baseline-interval', 0, 5)"
            ),
            {"user": rows.user_id, "hour": utc(days=-900)},
        )
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        policy = RetentionPolicy(days=0, per_endpoint=1)
        assert await prune_once(conn, policy, utc, [*ok, failing, skipper, allowed]) > 0
    assert await _set(engine, EXPECTED_SQL) != expected, "retention deleted runs"
    assert await _rollups(engine) == before, "rollups outlive the runs, not their retention"
    async with engine.connect() as conn:
        again = await stats.dashboard(conn, query)
    assert again.totals == shown.totals
    assert again.runs == shown.runs


# -- the dashboard from rollups equals a scan of the runs ------------------------------------
BASE = datetime(2026, 3, 2, 5, 17, 23, tzinfo=UTC)  # fixed, off the hour
SOURCES = ("baseline-interval", "ai-interval", "test")
STEP_S = 431
STATUSES = ("success", "failed", "skipped", "success", "success", "failed", "running")


def _history(endpoint_ids: list[str], user: str) -> list[dict[str, Any]]:
    """600 runs over about 3 days, every status and source, some slots late."""
    out = []
    for i in range(600):
        started = BASE + timedelta(seconds=STEP_S * i + (i * 37) % 60)
        status = STATUSES[i % len(STATUSES)] if i % 97 else "running"
        source = SOURCES[i % 3]
        due = None if source == "test" else started - timedelta(seconds=i % 5 * 1.5)
        if status == "skipped" and due is not None:
            started = due
        out.append(
            {
                "id": f"r{i:04d}",
                "endpoint_id": endpoint_ids[i % len(endpoint_ids)],
                "user_id": user,
                "status": status,
                "source": source,
                "due_at": due,
                "started_at": started,
                "duration_ms": 100 + i % 50 if status in ("success", "failed") else None,
            }
        )
    return out


def _late(r: dict[str, Any]) -> float:
    return max((r["started_at"] - r["due_at"]).total_seconds() * 1000, 0.0)


def _scan(
    history: list[dict[str, Any]],
    jobs_of: dict[str, tuple[str, str]],
    names: dict[str, str],
    q: stats.StatsQuery,
) -> dict[str, Any]:
    """The dashboard's run numbers computed from the rows themselves."""
    b = stats.choose_buckets(q.start, q.end)

    def within(r: dict[str, Any], start: datetime, end: datetime) -> bool:
        in_job = q.job_id is None or jobs_of[r["endpoint_id"]][0] == q.job_id
        return in_job and start <= r["started_at"] < end

    def chosen(r: dict[str, Any]) -> bool:
        return q.source is None or r["source"] == q.source

    def counted(r: dict[str, Any]) -> bool:
        return bool(r["status"] != "skipped")

    rows = [r for r in history if within(r, q.start, q.end)]
    picked = [r for r in rows if chosen(r)]
    ok = sum(r["status"] == "success" for r in picked)
    bad = sum(r["status"] == "failed" for r in picked)
    durations = [r["duration_ms"] for r in picked if r["duration_ms"] is not None]
    sources: dict[str, int] = defaultdict(int)
    for r in rows:
        if counted(r):
            sources[r["source"]] += 1
    series: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
    per_job: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    per_ep: dict[str, int] = defaultdict(int)
    for r in picked:
        at = stats.floor_to(r["started_at"], b.size)
        series[at][0] += r["status"] == "success"
        series[at][1] += r["status"] == "failed"
        job = per_job[(jobs_of[r["endpoint_id"]][1], jobs_of[r["endpoint_id"]][0])]
        job[0] += r["status"] == "success"
        job[1] += r["status"] == "failed"
        job[2] += counted(r)
        per_ep[r["endpoint_id"]] += counted(r)
    top = sorted((e for e in per_ep if per_ep[e]), key=lambda e: (-per_ep[e], e))
    top = top[: q.endpoint_limit]
    cells: dict[tuple[datetime, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in picked:
        if r["endpoint_id"] in top:
            cell = cells[(stats.floor_to(r["started_at"], b.size), r["endpoint_id"])]
            cell[0] += r["status"] == "success"
            cell[1] += r["status"] == "failed"
            cell[2] += r["duration_ms"] or 0
    late: dict[datetime, list[float]] = defaultdict(list)
    for r in rows:
        if r["due_at"] is not None and r["status"] != "skipped":
            late[stats.floor_to(r["started_at"], b.size)].append(_late(r))
    return {
        "filteredMetrics": {
            "totalRuns": sum(counted(r) for r in picked),
            "successCount": ok,
            "failureCount": bad,
            "avgDurationMs": round(sum(durations) / len(durations), 1) if durations else None,
        },
        "sourceDistribution": [
            {"source": s, "count": n}
            for s, n in sorted(sources.items(), key=lambda x: (-x[1], x[0]))
        ],
        "runTimeSeries": [
            {"date": bucket_label(at, b.hourly), "success": series[at][0], "failure": series[at][1]}
            for at in b.starts
        ],
        "jobHealth": [
            {"jobId": job_id, "jobName": name, "successCount": v[0], "failureCount": v[1]}
            for (name, job_id), v in sorted(per_job.items())
            if v[2]
        ],
        "endpointTimeSeries": [
            {
                "date": bucket_label(at, b.hourly),
                "endpointId": e,
                "endpointName": names[e],
                "success": v[0],
                "failure": v[1],
                "totalDurationMs": v[2],
            }
            for (at, e), v in sorted(
                cells.items(), key=lambda x: (x[0][0], names[x[0][1]], x[0][1])
            )
        ],
        "lateness": [
            (at, len(v), pytest.approx(sum(v) / len(v)), pytest.approx(max(v)))
            for at, v in sorted(late.items())
        ],
        "activityTotal": len(rows),
    }


async def test_dashboard_from_rollups_equals_a_scan_of_the_runs(engine: AsyncEngine) -> None:
    rows = await Rows(engine).setup()
    first_job = rows.job_id
    eps = await rows.endpoints([f"http://x/{i}" for i in range(3)])
    rows.job_id = second_job = await rows.job()
    eps += await rows.endpoints([f"http://y/{i}" for i in range(2)])
    jobs_of = {e: (first_job if i < 3 else second_job, "") for i, e in enumerate(eps)}
    jobs_of = {e: (j, j) for e, (j, _) in jobs_of.items()}  # Rows names a job by its id
    names = {e: f"ep{i if i < 3 else i - 3}" for i, e in enumerate(eps)}
    history = _history(eps, rows.user_id)
    async with engine.begin() as conn:
        await conn.execute(runs.insert(), history)
    end = BASE + timedelta(seconds=STEP_S * 600)
    ranges = [
        (BASE, end),  # the whole history, edges off the hour
        (BASE + timedelta(hours=2, minutes=43), BASE + timedelta(hours=50, minutes=3)),
        (BASE.replace(minute=0, second=0) + timedelta(hours=3), BASE + timedelta(hours=9)),
        (BASE + timedelta(minutes=50), BASE + timedelta(minutes=59)),  # inside one hour
        (BASE + timedelta(minutes=50), BASE + timedelta(minutes=70)),  # across one boundary
    ]
    cases = [stats.StatsQuery(rows.user_id, s, e, end, endpoint_limit=3) for s, e in ranges]
    cases.append(stats.StatsQuery(rows.user_id, BASE, end, end, job_id=first_job))
    cases.append(stats.StatsQuery(rows.user_id, ranges[1][0], end, end, source="ai-interval"))
    async with engine.connect() as conn:
        for q in cases:
            shown = await stats.dashboard(conn, q)
            data = DashboardStats.of(shown).model_dump(by_alias=True)
            want = _scan(history, jobs_of, names, q)
            for key in (
                "filteredMetrics",
                "sourceDistribution",
                "runTimeSeries",
                "jobHealth",
                "endpointTimeSeries",
            ):
                assert data[key] == want[key], (key, q)
            late = [(p.bucket, p.runs, p.avg_ms, p.max_ms) for p in shown.lateness]
            assert late == want["lateness"], q  # all sources, as the scan
            activity = await stats.activity(
                conn, stats.ActivityQuery(q.user_id, q.start, q.end, job_id=q.job_id)
            )
            assert activity.total == want["activityTotal"], q
        async with engine.connect() as side:  # the side lane reads the same numbers
            for q in cases:
                assert await stats.dashboard(conn, q, side=side) == await stats.dashboard(conn, q)
        span = ranges[1][1] - ranges[1][0]
        previous = stats.StatsQuery(rows.user_id, ranges[1][0] - span, ranges[1][0], end)
        prev = _scan(history, jobs_of, names, previous)["filteredMetrics"]
        shown = await stats.dashboard(conn, stats.StatsQuery(rows.user_id, *ranges[1], end))
    now_ok, now_bad = shown.totals.success, shown.totals.failed
    assert shown.success_rate.overall == round(100 * now_ok / (now_ok + now_bad), 1)
    assert prev["successCount"] + prev["failureCount"] > 0
    recent = [r for r in history if end - timedelta(hours=24) <= r["started_at"] < end]
    assert shown.recent == stats.Recent(
        runs=sum(r["status"] != "skipped" for r in recent),
        success=sum(r["status"] == "success" for r in recent),
        failed=sum(r["status"] == "failed" for r in recent),
    )


# -- the 7-day dashboard does not scan the range's runs ---------------------------------------
SEED_SQL = """
INSERT INTO runs (id, endpoint_id, user_id, status, source, due_at, started_at, duration_ms)
SELECT 'r-' || e.id || '-' || g, e.id, e.user_id,
       CASE WHEN g % 4 = 0 THEN 'failed' ELSE 'success' END, 'baseline-interval',
       :now - g * interval '5 minutes', :now - g * interval '5 minutes' + interval '2 seconds',
       900
FROM endpoints e, generate_series(1, 12 * 24 * 8) g
"""
EDGE_ROWS = 12 * 4  # an edge hour of 4 endpoints running every 5 minutes
PAGE = 50  # the activity page itself


def _rows_read(node: dict[str, Any]) -> int:
    own = 0
    if "Scan" in node["Node Type"] and node.get("Relation Name") == "runs":
        own = int(node.get("Actual Rows", 0)) * int(node.get("Actual Loops", 1))
    return own + sum(_rows_read(child) for child in node.get("Plans", []))


async def test_seven_day_dashboard_reads_only_the_edges_of_runs(engine: AsyncEngine) -> None:
    rows = await Rows(engine).setup()
    await rows.endpoints([f"http://x/{i}" for i in range(4)])
    # On the half hour: the range's first partial hour holds half an hour of runs, and so
    # would its last, which the rollup's row of the hour answers instead.
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=1)
    async with engine.begin() as conn:
        await conn.execute(text(SEED_SQL), {"now": now})
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()
    captured: list[tuple[str, Any, int]] = []  # statement, parameters, runs it may read
    allowed = EDGE_ROWS // 2 + 8  # the range's first half hour: its last is the rollup's row

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            captured.append((statement, params, allowed))

    start = now - timedelta(days=7)
    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with engine.connect() as conn:
            for job in (None, rows.job_id):
                data = await stats.dashboard(conn, stats.StatsQuery(rows.user_id, start, now, now))
                await stats.dashboard(conn, stats.StatsQuery(rows.user_id, start, now, now, job))
                allowed = 2 * EDGE_ROWS + PAGE + 8  # the timeline reads both edges and a page
                await stats.activity(conn, stats.ActivityQuery(rows.user_id, start, now))
                allowed = EDGE_ROWS // 2 + 8
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    in_range = data.totals.runs
    assert in_range >= 7 * 24 * 12 * 4 - 4
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        for statement, params, most in captured:
            cur = await driver.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params)
            plan = (await cur.fetchone())[0][0]["Plan"]
            read = _rows_read(plan)
            assert read <= most, f"{read} of {in_range} runs read by:\n{statement}"
    assert json.dumps(data, default=str)


# -- AI sessions per hour (migration 0012) ----------------------------------------------------
SESSIONS_SQL = """
SELECT date_trunc('hour', analyzed_at AT TIME ZONE 'UTC'), count(*),
       coalesce(sum(token_usage), 0)
FROM ai_sessions WHERE user_id = :user GROUP BY 1
"""
SESSIONS_ROLLED_SQL = """
SELECT hour AT TIME ZONE 'UTC', sum(sessions), sum(tokens) FROM ai_sessions_hourly
WHERE user_id = :user GROUP BY 1 HAVING sum(sessions) <> 0
"""


async def test_session_rollups_stay_exact_and_the_dashboard_reads_them(
    engine: AsyncEngine,
) -> None:
    rows = await Rows(engine).setup()
    endpoint = await rows.endpoint("http://x/s")
    sessions = [
        {
            "id": f"s-{i}",
            "endpoint_id": endpoint,
            "user_id": rows.user_id,
            "analyzed_at": BASE + timedelta(minutes=23 * i),
            "token_usage": None if i % 5 == 0 else 100 + i,
            "outcome": "running" if i % 3 == 0 else "applied",
        }
        for i in range(200)
    ]
    user = {"user": rows.user_id}
    async with engine.begin() as conn:  # one statement of many rows, then the planner's
        await conn.execute(text(_insert_sessions(sessions[:150])), {})
        for s in sessions[150:]:
            await conn.execute(text(_insert_sessions([s])), {})
    async with engine.begin() as conn:  # sessions finish: tokens change, several per statement
        await conn.execute(
            text(
                "UPDATE ai_sessions SET outcome = 'applied', token_usage = 7"
                " WHERE outcome = 'running' AND user_id = :user"
            ),
            user,
        )
    before = await _set(engine, SESSIONS_SQL, user)
    assert await _set(engine, SESSIONS_ROLLED_SQL, user) == before
    end = BASE + timedelta(minutes=23 * 200)
    async with engine.connect() as conn:
        for start, stop in [
            (BASE, end),
            (BASE + timedelta(hours=3, minutes=41), BASE + timedelta(hours=40, minutes=2)),
            (BASE + timedelta(minutes=5), BASE + timedelta(minutes=50)),  # inside one hour
        ]:
            q = stats.StatsQuery(rows.user_id, start, stop, end, series=False)
            data = await stats.dashboard(conn, q)
            kept = [s for s in sessions if start <= s["analyzed_at"] < stop]
            size = data.buckets.size
            want: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
            for s in kept:
                at = stats.floor_to(s["analyzed_at"], size)
                tokens = 7 if s["outcome"] == "running" else s["token_usage"] or 0
                want[at][0] += 1
                want[at][1] += tokens
            got = {p.bucket: [p.sessions, p.tokens] for p in data.session_totals}
            assert got == dict(want), (start, stop)
            activity = stats.ActivityQuery(rows.user_id, start, stop, event_type="sessions")
            counted = await stats.activity(conn, activity, counted=data)
            assert counted.total == len(kept)
    async with engine.begin() as conn:  # retention: the tokens were spent all the same
        await conn.execute(text("DELETE FROM ai_sessions WHERE id IN ('s-1', 's-2')"))
    assert await _set(engine, SESSIONS_ROLLED_SQL, user) == before


def _insert_sessions(items: list[dict[str, Any]]) -> str:
    values = ", ".join(
        f"('{s['id']}', '{s['endpoint_id']}', '{s['user_id']}', '{s['analyzed_at'].isoformat()}',"
        f" {'NULL' if s['token_usage'] is None else s['token_usage']}, '{s['outcome']}')"
        for s in items
    )
    return (
        "INSERT INTO ai_sessions (id, endpoint_id, user_id, analyzed_at, token_usage, outcome)"
        f" VALUES {values}"
    )
