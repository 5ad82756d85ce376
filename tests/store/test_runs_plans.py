"""History at scale: every statement that reads `runs` (run history pages first and deep,
run detail, endpoint health, the planner's reads, sparklines, retention, detached-run leases,
live-page notifications) is EXPLAINed against a database where `runs` is big enough that
PostgreSQL would scan it sequentially if no index fitted. And deep pages go by cursor."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import NOW, interval_endpoint
from cronicorn.store import claims, cursors, detached_runs, outcomes, planner, retention, wakeups
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store
from cronicorn.store import runs as run_store
from cronicorn.store.errors import Invalid
from support import plan_scans

# 400 endpoints x 50 runs of another user, and the viewer's one endpoint with 1,000 (the
# default retention per endpoint): a page is a few rows of 21,000, and an endpoint's whole
# history under 5 % of the table, where a sequential scan loses only if an index fits.
OTHERS_SQL = """
WITH job AS (
    INSERT INTO jobs (id, user_id, name, status, created_at, updated_at)
    VALUES ('j-other', :other, 'other', 'active', :now, :now) RETURNING id, user_id
), eps AS (
    INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms, next_run_at)
    SELECT 'e-other-' || g, job.id, job.user_id, 'e' || g, 'http://x/' || g, 60000, :now
    FROM job, generate_series(1, 400) g
    RETURNING id, user_id
)
INSERT INTO runs (id, endpoint_id, user_id, status, source, due_at, started_at, finished_at,
                  duration_ms)
SELECT 'r-' || eps.id || '-' || g, eps.id, eps.user_id,
       CASE WHEN g % 4 = 0 THEN 'failed' ELSE 'success' END, 'baseline-interval',
       :now - g * interval '1 minute', :now - g * interval '1 minute',
       :now - g * interval '1 minute' + interval '1 second', 900
FROM eps, generate_series(1, 50) g
"""
MINE_SQL = """
INSERT INTO runs (id, endpoint_id, user_id, status, source, due_at, started_at, finished_at,
                  duration_ms)
SELECT 'r-mine-' || g, :endpoint, :user,
       CASE WHEN g % 5 = 0 THEN 'failed' ELSE 'success' END, 'baseline-interval',
       :now - g * interval '1 minute', :now - g * interval '1 minute',
       :now - g * interval '1 minute' + interval '1 second', 400
FROM generate_series(1, 1000) g
"""


async def _endpoint(engine: AsyncEngine, user_id: str) -> str:
    async with engine.begin() as conn:
        job = await job_store.create(conn, user_id, name="job", description=None, now=NOW)
        return (await endpoint_store.create(conn, user_id, job.id, interval_endpoint(), NOW)).id


async def _seed(engine: AsyncEngine, alice: str, bob: str) -> str:
    endpoint_id = await _endpoint(engine, alice)
    async with engine.begin() as conn:
        await conn.execute(text(OTHERS_SQL), {"other": bob, "now": NOW})
        await conn.execute(text(MINE_SQL), {"endpoint": endpoint_id, "user": alice, "now": NOW})
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE runs; ANALYZE endpoints"))
        await conn.commit()
    return endpoint_id


async def _history_reads(engine: AsyncEngine, user: str, endpoint_id: str) -> None:
    """Every read of `runs` the faces and the planner make, as they make them."""
    async with engine.connect() as conn:
        first = await run_store.page_for_endpoint(conn, user, endpoint_id, limit=25)
        assert (first.total, first.next_cursor is None) == (1000, False)
        await run_store.page_for_endpoint(conn, user, endpoint_id, limit=25, offset=900)
        deep = await run_store.page_for_endpoint(
            conn, user, endpoint_id, limit=25, cursor=run_store.encode_cursor(first.items[-1])
        )
        assert deep.items[0].started_at < first.items[-1].started_at
        back = await run_store.page_for_endpoint(
            conn, user, endpoint_id, limit=25, before=deep.prev_cursor
        )
        assert [run.id for run in back.items] == [run.id for run in first.items]
        for filters in (
            {"status": "failed"},
            {"since": NOW - timedelta(hours=10), "until": NOW - timedelta(hours=5)},
        ):
            page = await run_store.page_for_endpoint(conn, user, endpoint_id, **filters)
            assert page.next_cursor is not None
            await run_store.page_for_endpoint(
                conn, user, endpoint_id, cursor=page.next_cursor, **filters
            )
        await run_store.get_detail(conn, user, first.items[0].id)
        await run_store.health(conn, user, endpoint_id, NOW - timedelta(hours=24))
        await planner.finished_runs(conn, endpoint_id, limit=20)
        await planner.finished_runs(conn, endpoint_id, limit=20, offset=900)
        await planner.latest_of(conn, [endpoint_id, "e-other-1"])
        await planner.health(conn, endpoint_id, NOW)
        await outcomes.recent_outcomes(conn, user, [endpoint_id])


RAW_READS = {  # psycopg statements of the scheduler and retention, with their parameters
    "retention by age": (
        retention.AGE_SQL,
        {"cutoff": NOW - timedelta(days=30), "limit": retention.DELETE_LIMIT},
    ),
    "retention by count": (
        retention.COUNT_SQL,
        {"ids": ["e-other-1", "e-other-2"], "offset": 29, "limit": retention.DELETE_LIMIT},
    ),
    "live pages": (wakeups.RUNS_FINISHED_SQL, {"ids": ["r-mine-1", "r-mine-2"]}),
    "detached renew": (
        detached_runs.RENEW_SQL,
        {"ids": ["r-mine-1"], "leases": ["w@1"], "lease_s": 30.0},
    ),
    "detached start": (
        detached_runs.DETACH_SQL,
        {"rows": '[{"id": "r-mine-1", "lease": "w@1"}]', "lease_s": 30.0},
    ),
    "detached finish": (
        detached_runs.FINISH_SQL,
        {"runs": '[{"id": "r-mine-1", "lease": "w@1", "status": "success"}]'},
    ),
    "lease take-over closes runs": (
        claims.TAKE_OVER_SQL,
        {
            "lease": "t#1@3",
            "now": NOW,
            "lease_s": 30.0,
            "limit": 500,
            "error": "lost",
            "dead_owners": True,
            "liveness_class": claims.LIVENESS_CLASS,
            "scan": 500,  # lease18's take-over (migration 0013) walks leases in chunks
            "swept": [],
        },
    ),
    "unstarted runs released": (
        claims.RELEASE_UNSTARTED_SQL,
        {"ids": ["e-other-1"], "leases": ["w#1"], "run_ids": ["r-mine-1"], "worker": "w"},
    ),
    "detached take-over": (
        detached_runs.TAKE_OVER_SQL,
        {
            "now": NOW,
            "limit": 500,
            "error": "lost",
            "dead_owners": True,
            "liveness_class": 1,
        },
    ),
}


def _seq_scans_of_runs(plan: dict[str, Any]) -> list[tuple[str, str]]:
    scans = plan_scans(plan)
    return [scan for scan in scans if scan == ("Seq Scan", "runs")]


async def test_every_read_of_runs_uses_an_index(engine: AsyncEngine, alice: str, bob: str) -> None:
    endpoint_id = await _seed(engine, alice, bob)
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "runs" in statement and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            captured.append((statement, params))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        await _history_reads(engine, alice, endpoint_id)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    assert len(captured) >= 14  # one statement per read above
    statements = [(statement, params) for statement, params in captured]
    statements += list(RAW_READS.values())

    async with engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        for statement, params in statements:
            cur = await driver.execute(f"EXPLAIN (FORMAT JSON) {statement}", params)
            plan = (await cur.fetchone())[0][0]["Plan"]
            assert not _seq_scans_of_runs(plan), f"{statement}\n{params}\n{plan_scans(plan)}"
        await driver.rollback()
    await _health_reads_the_partial_hour(engine, alice, endpoint_id)


async def test_cursor_pages_walk_the_history_without_gaps(engine: AsyncEngine, alice: str) -> None:
    """Runs that started at the same instant are ordered by id, so a page boundary between
    them loses none and repeats none; offset still counts from the cursor."""
    endpoint_id = await _endpoint(engine, alice)
    async with engine.begin() as conn:  # manual runs (no slot), threes share a start
        await conn.execute(
            text(
                "INSERT INTO runs (id, endpoint_id, user_id, status, source, started_at)"
                " SELECT 'r' || g, :e, :u, CASE WHEN g % 2 = 1 THEN 'failed' ELSE 'success' END,"
                " 'test', :now - (g / 3) * interval '1 minute' FROM generate_series(0, 10) g"
            ),
            {"e": endpoint_id, "u": alice, "now": NOW},
        )
    async with engine.connect() as conn:
        everything = await run_store.page_for_endpoint(conn, alice, endpoint_id, limit=100)
        assert (everything.next_cursor, everything.total) == (None, 11)
        walked, cursor, pages = [], None, 0
        while True:
            page = await run_store.page_for_endpoint(
                conn, alice, endpoint_id, limit=2, cursor=cursor
            )
            assert page.total == 11
            walked += [run.id for run in page.items]
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert walked == [run.id for run in everything.items]
        assert pages == 6  # 2+2+2+2+2+1: the last page has no cursor
        back, before = [], page.prev_cursor  # from the last page up, through the ties
        while before is not None:
            newer = await run_store.page_for_endpoint(
                conn, alice, endpoint_id, limit=2, before=before
            )
            assert newer.total == 11
            assert newer.next_cursor is not None
            back = [run.id for run in newer.items] + back
            before = newer.prev_cursor
        assert back == walked[:-1]  # every newer page, each once, in order
        assert everything.prev_cursor is None  # the newest page has none
        exact = await run_store.page_for_endpoint(conn, alice, endpoint_id, limit=11)
        assert exact.next_cursor is None  # a full last page says so too
        first = await run_store.page_for_endpoint(conn, alice, endpoint_id, limit=3)
        skipped = await run_store.page_for_endpoint(
            conn, alice, endpoint_id, limit=2, offset=2, cursor=first.next_cursor
        )
        assert [run.id for run in skipped.items] == walked[5:7]
        failed = await run_store.page_for_endpoint(
            conn, alice, endpoint_id, status="failed", limit=2
        )
        rest = await run_store.page_for_endpoint(
            conn, alice, endpoint_id, status="failed", limit=100, cursor=failed.next_cursor
        )
        assert [r.id for r in failed.items + rest.items] == [
            r.id for r in everything.items if r.status == "failed"
        ]
        for bad in ("x", "bm90IGEgY3Vyc29y", "MTIzNA", "LTEu", "!!!"):
            with pytest.raises(Invalid):
                await run_store.page_for_endpoint(conn, alice, endpoint_id, cursor=bad)


def test_cursor_round_trip() -> None:
    at = datetime(2025, 3, 10, 12, 0, 0, 123456, tzinfo=UTC)
    run = run_store.RunSummary("abc.def", "e", "success", "s", 1, None, at, None, None, None, None)
    assert cursors.decode(run_store.encode_cursor(run)) == (at, "abc.def")


def _rows_of_runs(node: dict[str, Any]) -> float:
    """Rows the scans of `runs` in an EXPLAIN ANALYZE plan returned, over all their loops."""
    rows = 0.0
    if "Scan" in node["Node Type"] and node.get("Relation Name") == "runs":
        rows += node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
    for child in node.get("Plans", []):
        rows += _rows_of_runs(child)
    return rows


async def _health_reads_the_partial_hour(engine: AsyncEngine, user: str, endpoint_id: str) -> None:
    """The window's counts come from the rollups for whole hours: of the viewer's run a
    minute over the last 1,000 minutes, a window reaching 10 h 30 min back reads the 30 runs
    of its partial first hour (and the latest run and the streak), not the 630 in it."""
    since = NOW - timedelta(hours=10, minutes=30)
    params = {"endpoint_id": endpoint_id, "user_id": user, **run_store.health_spans(since)}
    async with engine.connect() as conn:
        summary = await run_store.health(conn, user, endpoint_id, since)
        assert summary.success_count + summary.failure_count == 630
        driver: Any = (await conn.get_raw_connection()).driver_connection
        sql = re.sub(r"(?<!:):(\w+)", r"%(\1)s", run_store._HEALTH_SQL.text)
        cur = await driver.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = (await cur.fetchone())[0][0]["Plan"]
        await driver.rollback()
    assert not _seq_scans_of_runs(plan), plan_scans(plan)
    assert _rows_of_runs(plan) <= 40, plan_scans(plan)  # 30 + latest run + streak's few


def _scans_of_runs(node: dict[str, Any], under: str = "") -> list[tuple[str, str, str]]:
    """(node type, index, the subplan it is under) of every scan of `runs`."""
    under = node.get("Subplan Name", under)
    found = []
    if "Scan" in node["Node Type"] and node.get("Relation Name") == "runs":
        found.append((node["Node Type"], node.get("Index Name", ""), under))
    for child in node.get("Plans", []):
        found += _scans_of_runs(child, under)
    return found


async def test_a_status_filtered_total_is_an_index_only_count(
    engine: AsyncEngine, alice: str, bob: str
) -> None:
    """`status` is covered by the endpoint's history index (0014): the total of a filtered
    page (`?status=failed`) can count index entries instead of visiting every run's heap page
    (at 10M runs, 974 buffers for 967 runs per endpoint). Whether PostgreSQL prefers it
    depends on the visibility map (autovacuum's), so the plan is asked with the other ways
    of counting out of the way (in a transaction rolled back): the scan left is index-only
    only if `status` is in the index."""
    endpoint_id = await _seed(engine, alice, bob)
    statement = run_store._list_statement(True, False, False, False)
    params = {"endpoint_id": endpoint_id, "user_id": alice, "status": "failed", "fetch": 26}
    async with engine.connect() as conn:
        page = await run_store.page_for_endpoint(conn, alice, endpoint_id, status="failed")
        assert page.total == 200
        driver: Any = (await conn.get_raw_connection()).driver_connection
        await driver.execute("SET LOCAL enable_seqscan = off")  # rolled back below
        await driver.execute("SET LOCAL enable_bitmapscan = off")
        await driver.execute("DROP INDEX ux_runs_endpoint_id_due_at")  # the other by endpoint
        sql = re.sub(r"(?<!:):(\w+)", r"%(\1)s", statement.text)
        cur = await driver.execute(f"EXPLAIN (FORMAT JSON) {sql}", {**params, "offset": 0})
        plan = (await cur.fetchone())[0][0]["Plan"]
        await driver.rollback()
    counted = [scan for scan in _scans_of_runs(plan) if scan[2].startswith("InitPlan")]
    assert counted == [("Index Only Scan", "ix_runs_endpoint_id_started_at", counted[0][2])], (
        _scans_of_runs(plan)
    )
