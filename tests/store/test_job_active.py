"""Endpoints of paused or archived jobs leave the claim index (triggers of migration 0003)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from cronicorn.domain.ids import new_id
from cronicorn.store.claims import CLAIM_SQL, claim_params


def _seed(conn: psycopg.Connection, *, job_status: str, count: int, due: datetime) -> str:
    user_id = new_id()
    job_id = new_id()
    conn.execute("INSERT INTO users (id, email) VALUES (%s, %s)", (user_id, f"{user_id}@x.io"))
    conn.execute(
        "INSERT INTO jobs (id, user_id, name, status) VALUES (%s, %s, %s, %s)",
        (job_id, user_id, job_id, job_status),
    )
    conn.execute(
        """
        INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms, next_run_at)
        SELECT gen_random_uuid()::text, %s, %s, 'e' || g, 'http://127.0.0.1:9/', 60000, %s
        FROM generate_series(1, %s) AS g
        """,
        (job_id, user_id, due, count),
    )
    return job_id


def _flags(conn: psycopg.Connection, job_id: str) -> set[bool]:
    rows = conn.execute("SELECT DISTINCT job_active FROM endpoints WHERE job_id = %s", (job_id,))
    return {row[0] for row in rows}


def test_job_status_changes_follow_onto_its_endpoints(database_url: str) -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    with psycopg.connect(database_url, autocommit=True) as conn:
        active = _seed(conn, job_status="active", count=3, due=past)
        paused = _seed(conn, job_status="paused", count=3, due=past)
        assert _flags(conn, active) == {True}
        assert _flags(conn, paused) == {False}, "inserted under a paused job"
        conn.execute("UPDATE jobs SET status = 'paused' WHERE id = %s", (active,))
        assert _flags(conn, active) == {False}
        conn.execute("UPDATE jobs SET status = 'active' WHERE id = %s", (active,))
        assert _flags(conn, active) == {True}
        conn.execute("UPDATE jobs SET status = 'archived' WHERE id = %s", (active,))
        assert _flags(conn, active) == {False}
        # moving an endpoint into an active job re-activates it
        conn.execute("UPDATE jobs SET status = 'active' WHERE id = %s", (paused,))
        moved = conn.execute("SELECT id FROM endpoints WHERE job_id = %s LIMIT 1", (active,))
        endpoint_id = moved.fetchone()[0]  # type: ignore[index]
        conn.execute("UPDATE endpoints SET job_id = %s WHERE id = %s", (paused, endpoint_id))
        flag = conn.execute("SELECT job_active FROM endpoints WHERE id = %s", (endpoint_id,))
        assert flag.fetchone() == (True,)


@pytest.mark.parametrize("paused_endpoints", [0, 5000])
def test_claim_scan_does_not_touch_endpoints_of_paused_jobs(
    database_url: str, paused_endpoints: int
) -> None:
    """However many overdue endpoints sit in paused jobs, the claim's index scan reads only
    claimable rows: nothing is fetched and then removed by a filter."""
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        if paused_endpoints:
            _seed(conn, job_status="paused", count=paused_endpoints, due=now - timedelta(hours=1))
        _seed(conn, job_status="active", count=50, due=now - timedelta(minutes=1))
        conn.execute("ANALYZE endpoints")
        with conn.transaction(force_rollback=True):
            # Small tables tempt the planner into a seq scan + sort; the question here is
            # whether the index CAN serve the claim without reading paused jobs' rows.
            conn.execute("SET LOCAL enable_seqscan = off")
            params = claim_params(
                worker="w", lease="w#1", now=now, horizon=now, limit=10, lease_s=30
            )
            explain = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + CLAIM_SQL, params)
            plan = explain.fetchone()
    assert plan is not None
    document = plan[0] if isinstance(plan[0], list) else json.loads(plan[0])
    nodes = _walk(document[0]["Plan"])
    scans = [n for n in nodes if n.get("Index Name") == "ix_endpoints_due"]
    assert scans, [(n["Node Type"], n.get("Index Name")) for n in nodes]
    assert all(n.get("Rows Removed by Filter", 0) == 0 for n in scans)
    assert sum(n["Actual Rows"] for n in scans) <= 10


def _walk(node: dict[str, object]) -> list[dict[str, object]]:
    out = [node]
    for child in node.get("Plans", []):  # type: ignore[attr-defined]
        out.extend(_walk(child))
    return out
