"""The claim at scale: against 50,000 endpoints, most of them idle as in a real installation
(paused and archived jobs and endpoints, hourly schedules), the claim statement and the idle
loop's next-due look read only due rows through the partial due index, in the plan PostgreSQL
picks for these parameter values and in the generic plan a prepared statement settles on (the
scheduler's psycopg connection prepares the claim after five executions)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from cronicorn.store.claims import (
    CLAIM_SQL,
    LIVENESS_CLASS,
    NEXT_DUE_SQL,
    SWEEP_SQL,
    TAKE_OVER_SQL,
    claim_params,
)

pytestmark = pytest.mark.xdist_group("claim_plans")

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ENDPOINTS = 50_000
ACTIVE_EVERY = 100  # 500 endpoints every second, due times spread over [NOW - 0.5 s, NOW + 0.5 s)
LIMIT = 100

# One statement per table. Every 100th endpoint runs each second; the rest: jobs 1, 3 and 5 of
# every 10 paused (their endpoints keep a past next_run_at, as a paused job's do), and in the
# active jobs 15 % archived (past next_run_at too), 30 % paused for days, the others hourly.
# `job_active` is written as the triggers would (they, and foreign-key checks, are off for
# the seeding: `replica`).
SEED = """
SET session_replication_role = replica;
INSERT INTO users (id, email) SELECT 'u' || g, 'u' || g || '@example.com'
FROM generate_series(0, {users}) g;
INSERT INTO jobs (id, user_id, name, status)
SELECT 'j' || g, 'u' || (g / 10), 'job',
       CASE WHEN g % 10 IN (1, 3, 5) THEN 'paused' ELSE 'active' END
FROM generate_series(0, {jobs}) g;
INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms, next_run_at,
                       paused_until, archived_at, job_active)
SELECT 'e' || g, 'j' || (g / 10), 'u' || (g / 100), 'endpoint', 'http://127.0.0.1:9/',
       CASE WHEN active THEN 1000 ELSE 3600000 END,
       CASE WHEN active THEN {now} + ((g / {every}) * 2 - 500) * interval '1 millisecond'
            WHEN NOT job_active OR r < 15 THEN {now} - (g % 86400) * interval '1 second'
            WHEN r < 45 THEN {now} + (1 + g % 30) * interval '1 day'
            ELSE {now} + interval '1 minute' + (g % 3600) * interval '1 second' END,
       CASE WHEN NOT active AND job_active AND r >= 15 AND r < 45
            THEN {now} + (1 + g % 30) * interval '1 day' END,
       CASE WHEN NOT active AND job_active AND r < 15 THEN {now} - interval '1 day' END,
       job_active
FROM generate_series(0, {last}) g,
     LATERAL (SELECT g % {every} = 0 AS active, (g / 10) % 10 NOT IN (1, 3, 5) AS job_active,
                     (g * 7919) % 100 AS r) k;
SET session_replication_role = DEFAULT;
ANALYZE users, jobs, endpoints;
"""
DUE = 376  # active endpoints due by the claim's horizon, NOW + 0.25 s


@pytest.fixture(scope="module")
def conn(pg_server: Any) -> Iterator[psycopg.Connection[Any]]:
    url = pg_server.create_database()
    try:
        with psycopg.connect(url, autocommit=True) as connection:
            now = f"'{NOW.isoformat()}'::timestamptz"
            seed = SEED.format(
                now=now,
                every=ACTIVE_EVERY,
                users=ENDPOINTS // 100 - 1,
                jobs=ENDPOINTS // 10 - 1,
                last=ENDPOINTS - 1,
            )
            connection.execute(seed)
            yield connection
    finally:
        pg_server.drop_database(url)


def _params() -> dict[str, Any]:
    return claim_params(
        worker="w",
        lease="w#1",
        now=NOW,
        horizon=NOW + timedelta(seconds=0.25),
        limit=LIMIT,
        lease_s=30,
    )


def _explain(
    conn: psycopg.Connection[Any],
    statement: str,
    generic: bool,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of `statement` with the claim's parameters (or `params`),
    rolled back; `generic`: the plan of a prepared statement that no longer looks at
    parameter values."""
    params = params or _params()
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    prepared = re.sub(r"%\((\w+)\)s", number, statement)
    values = sql.SQL(", ").join(sql.Literal(params[n]) for n in names).as_string(conn)
    execute = f"EXECUTE claim_plan({values})" if names else "EXECUTE claim_plan"
    mode = "force_generic_plan" if generic else "force_custom_plan"
    with conn.transaction(force_rollback=True):
        conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
        conn.execute(f"PREPARE claim_plan AS {prepared}")
        row = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}").fetchone()
    conn.execute("DEALLOCATE claim_plan")
    assert row is not None
    return dict(row[0][0]["Plan"])


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _reads_of_endpoints(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Scans of `endpoints` that look for rows (not the updates' primary-key lookups)."""
    return [
        n
        for n in _nodes(plan)
        if n.get("Alias") == "e2" or (n.get("Index Name") or "").startswith("ix_endpoints_due")
    ]


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize("statement", [CLAIM_SQL, NEXT_DUE_SQL], ids=["claim", "next_due"])
def test_claim_reads_only_due_rows_through_the_due_index(
    conn: psycopg.Connection[Any], statement: str, generic: bool
) -> None:
    plan = _explain(conn, statement, generic)
    scans = [(n["Node Type"], n.get("Index Name") or n.get("Relation Name")) for n in _nodes(plan)]
    reads = _reads_of_endpoints(plan)
    assert reads, scans
    assert all(n.get("Index Name") == "ix_endpoints_due" for n in reads), scans
    assert not any(kind == "Seq Scan" for kind, _ in scans), scans
    # Only due rows: what the due index handed out, kept or filtered, is at most the due set
    # (50,000 rows exist; ~20,000 of them have a next_run_at in the past).
    examined = max(int(n["Actual Rows"]) + int(n.get("Rows Removed by Filter", 0)) for n in reads)
    assert examined <= DUE, scans
    # ...and nothing of the jobs table: `job_active` (kept by triggers) already says it all.
    assert not any(rel in ("jobs", "pk_jobs") for _, rel in scans), scans


# The take-over with no index on the lease columns (migration 0013): runs in flight through
# `ix_runs_running`, the due front through `ix_endpoints_due`, the walk's chunk and the
# candidates by primary key; never a scan of all endpoints. Some leases are held (expired,
# with their running runs) so every part of the statement does work.
LEASED = """
INSERT INTO runs (id, endpoint_id, user_id, status, source, due_at, started_at)
SELECT 'r' || e.id, e.id, e.user_id, 'running', 'baseline-interval', e.next_run_at,
       e.next_run_at
FROM endpoints e WHERE e.id IN ('e0', 'e100', 'e200');
UPDATE endpoints SET lease_owner = 'dead#1', lease_until = now() - interval '1 second'
WHERE id IN ('e0', 'e100', 'e200', 'e1', 'e2');
"""
TAKE_OVER_PARAMS = {
    "lease": "t#1@3",
    "now": NOW,
    "lease_s": 30.0,
    "limit": 500,
    "scan": 1000,
    "swept": ["e1", "e2"],
    "error": "lost",
    "dead_owners": True,
    "liveness_class": LIVENESS_CLASS,
}


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize(
    ("statement", "params"),
    [(TAKE_OVER_SQL, TAKE_OVER_PARAMS), (SWEEP_SQL, {"after": "e4", "chunk": 2000})],
    ids=["take_over", "sweep"],
)
def test_the_take_over_reads_endpoints_through_indexes_only(
    conn: psycopg.Connection[Any], statement: str, params: dict[str, Any], generic: bool
) -> None:
    with conn.transaction(force_rollback=True):
        conn.execute(LEASED)
        plan = _explain(conn, statement, generic, params)
    scans = [(n["Node Type"], n.get("Index Name") or n.get("Relation Name")) for n in _nodes(plan)]
    tables = ("endpoints", "runs")
    assert not any(kind == "Seq Scan" and rel in tables for kind, rel in scans), scans
    assert not any(kind.startswith("Bitmap") for kind, _ in scans), scans
    examined = sum(
        int(n["Actual Rows"]) * int(n.get("Actual Loops", 1))
        + int(n.get("Rows Removed by Filter", 0))
        for n in _nodes(plan)
        if "Scan" in n["Node Type"]
    )
    assert examined <= 2 * DUE + 2_000 + 50, scans  # the due front, the chunk, a few leases
    if statement is TAKE_OVER_SQL:
        assert plan.get("Actual Rows") == 5, "every lost lease found: in flight, due, swept"
