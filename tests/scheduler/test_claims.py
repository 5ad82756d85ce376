"""Claim and lease SQL against a real database: one statement, never the same slot twice,
paused and archived endpoints skipped, expired leases taken over, the due index used."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import timedelta
from typing import Any

import psycopg
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain import ScheduleState
from cronicorn.store.claims import (
    CLAIM_SQL,
    WORKER_LOST,
    claim_due,
    claim_params,
    next_due_at,
    release_unstarted,
    renew_leases,
    take_over,
)
from cronicorn.store.run_writes import (
    LOCK_SQL,
    WRITE_SQL,
    EndpointUpdate,
    RunOutcome,
    lock_leased,
    write_finished,
)
from cronicorn.store.tables import endpoints, jobs
from scheduler.conftest import Rows, utc
from support import plan_scans


async def _claim(conn: psycopg.AsyncConnection[Any], lease: str = "w1#1", **kw: Any) -> Any:
    now = kw.pop("now", utc())
    return await claim_due(
        conn,
        worker=lease.split("#")[0],
        lease=lease,
        now=now,
        horizon=kw.pop("horizon", now),
        limit=kw.pop("limit", 100),
        lease_s=kw.pop("lease_s", 30),
    )


async def test_claim_leases_due_endpoints_and_starts_their_runs(
    rows: Rows, conn: psycopg.AsyncConnection[Any]
) -> None:
    due = await rows.endpoints(["http://x/a", "http://x/b"], first_at=utc(seconds=-5))
    later = await rows.endpoint("http://x/c", next_run_at=utc(seconds=60))
    claims = await _claim(conn)
    assert sorted(c.endpoint_id for c in claims) == sorted(due)
    assert all(c.run_id is not None and c.attempt == 1 for c in claims)
    row = await rows.endpoint_row(due[0])
    assert row["lease_owner"] == "w1#1"
    assert row["lease_until"] is not None
    assert (await rows.endpoint_row(later))["lease_owner"] is None
    started = await rows.runs(due[0])
    assert len(started) == 1
    assert started[0]["status"] == "running"
    assert started[0]["due_at"] == claims[0].due_at or started[0]["due_at"] == claims[1].due_at
    assert started[0]["worker"] == "w1"
    assert started[0]["source"] == "baseline-interval"
    # leased rows are not claimed again, by anyone
    assert await _claim(conn, "w2#1") == []


async def test_concurrent_claims_never_share_an_endpoint(rows: Rows, database_url: str) -> None:
    await rows.endpoints([f"http://x/{i}" for i in range(300)], first_at=utc(seconds=-1))

    async def worker(name: str) -> list[str]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
            got: list[str] = []
            for n in range(10):
                got += [x.endpoint_id for x in await _claim(c, f"{name}#{n}", limit=20)]
            return got

    results = await asyncio.gather(*(worker(f"w{i}") for i in range(4)))
    claimed = [e for r in results for e in r]
    assert len(claimed) == 300
    assert len(set(claimed)) == 300


async def test_paused_archived_and_inactive_jobs_are_never_claimed(
    rows: Rows, conn: psycopg.AsyncConnection[Any], engine: AsyncEngine
) -> None:
    past = utc(seconds=-5)
    paused = await rows.endpoint("http://x/p", first_at=past, paused_until=utc(hours=1))
    resumed = await rows.endpoint("http://x/r", first_at=past, paused_until=utc(seconds=-1))
    await rows.endpoint("http://x/a", first_at=past, archived_at=past)
    for status in ("paused", "archived"):
        rows.job_id = await rows.job(status=status)
        await rows.endpoint(f"http://x/{status}", first_at=past)
    claims = await _claim(conn)
    assert [c.endpoint_id for c in claims] == [resumed]
    assert paused != resumed
    async with engine.begin() as c:
        await c.execute(update(jobs).values(status="active"))
    assert len(await _claim(conn, "w1#2")) == 2  # the endpoints of the two jobs


async def test_claim_looks_ahead_only_to_the_horizon(
    rows: Rows, conn: psycopg.AsyncConnection[Any]
) -> None:
    soon = await rows.endpoint("http://x/soon", first_at=utc(seconds=0.2))
    await rows.endpoint("http://x/later", first_at=utc(seconds=5))
    now = utc()
    claims = await _claim(conn, now=now, horizon=now + timedelta(seconds=0.5))
    assert [c.endpoint_id for c in claims] == [soon]
    started = (await rows.runs(soon))[0]
    assert started["started_at"] == started["due_at"]  # placeholder until it really starts
    nxt = await next_due_at(conn)
    assert nxt is not None
    assert nxt > now + timedelta(seconds=4)


async def test_a_slot_that_already_ran_is_claimed_without_a_new_run(
    rows: Rows, conn: psycopg.AsyncConnection[Any], engine: AsyncEngine
) -> None:
    endpoint = await rows.endpoint("http://x/a", first_at=utc(seconds=-1))
    first = await _claim(conn)
    async with engine.begin() as c:  # someone releases the lease without moving the plan
        await c.execute(update(endpoints).values(lease_owner=None, lease_until=None))
    second = await _claim(conn, "w1#2")
    assert [c.endpoint_id for c in second] == [endpoint]
    assert first[0].run_id is not None
    assert second[0].run_id is None
    assert await rows.run_count(endpoint) == 1


async def test_finishing_writes_runs_and_plans_in_one_statement(
    rows: Rows, conn: psycopg.AsyncConnection[Any]
) -> None:
    ids = await rows.endpoints(["http://x/a", "http://x/b"], first_at=utc(seconds=-1))
    claims = await _claim(conn)
    by_id = {c.endpoint_id: c for c in claims}
    async with conn.transaction():
        leased = await lock_leased(conn, [(c.endpoint_id, c.lease) for c in claims])
        assert set(leased) == set(ids)
        assert isinstance(leased[ids[0]].state, ScheduleState)
        now = utc()
        outcomes = [
            RunOutcome(
                run_id=by_id[ids[0]].run_id or "",
                status="success",
                started_at=now,
                finished_at=now,
                duration_ms=3,
                status_code=200,
                body_json={"ok": True},
                size=11,
            ),
            RunOutcome(
                run_id=by_id[ids[1]].run_id or "",
                status="failed",
                started_at=now,
                finished_at=now,
                error="HTTP 500",
                body_text="boom",
            ),
        ]
        updates = [
            EndpointUpdate(
                endpoint_id=i,
                lease=by_id[i].lease,
                next_run_at=now + timedelta(seconds=1),
                source="baseline-interval",
                failure_count=n,
                last_due_at=by_id[i].due_at,
                last_run_at=now,
            )
            for n, i in enumerate(ids)
        ]
        assert await write_finished(conn, outcomes=outcomes, updates=updates) == 2
    first = (await rows.runs(ids[0]))[0]
    assert first["status"] == "success"
    assert first["response_body"] == {"ok": True}
    second = (await rows.runs(ids[1]))[0]
    assert second["status"] == "failed"
    assert second["response_text"] == "boom"
    row = await rows.endpoint_row(ids[1])
    assert row["lease_owner"] is None
    assert row["failure_count"] == 1
    # a retried write (lost acknowledgement) changes nothing
    assert await write_finished(conn, outcomes=outcomes, updates=updates) == 0


async def test_expired_leases_are_taken_over_and_their_runs_closed(
    rows: Rows, conn: psycopg.AsyncConnection[Any], engine: AsyncEngine
) -> None:
    endpoint = await rows.endpoint("http://x/a", first_at=utc(seconds=-1))
    claims = await _claim(conn, "dead#1")
    assert await take_over(conn, lease="w2#1", now=utc(), lease_s=30, dead_owners=True) == []
    async with engine.begin() as c:
        await c.execute(update(endpoints).values(lease_until=utc(seconds=-1)))
    # the dead worker's heartbeat can't resurrect a lease someone else took
    lost = await take_over(conn, lease="w2#1", now=utc(), lease_s=30, dead_owners=True)
    assert [(x.endpoint_id, x.run_id, x.dead_lease) for x in lost] == [
        (endpoint, claims[0].run_id, "dead#1")
    ]
    assert await renew_leases(conn, [(endpoint, "dead#1")], lease_s=30) == 0
    run = (await rows.runs(endpoint))[0]
    assert run["status"] == "failed"
    assert run["error_message"] == WORKER_LOST
    assert (await rows.endpoint_row(endpoint))["lease_owner"] == "w2#1"


async def test_unstarted_claims_are_given_back(
    rows: Rows, conn: psycopg.AsyncConnection[Any]
) -> None:
    endpoint = await rows.endpoint("http://x/a", first_at=utc(seconds=-1))
    claims = await _claim(conn)
    assert await _meter(conn, rows.user_id) == 1
    await release_unstarted(conn, worker="w1", claims=claims)
    assert await rows.run_count(endpoint) == 0
    assert await _meter(conn, rows.user_id) == 0, "a run that never started is not counted"
    assert (await rows.endpoint_row(endpoint))["lease_owner"] is None
    assert [c.endpoint_id for c in await _claim(conn, "w1#2")] == [endpoint]
    assert await _meter(conn, rows.user_id) == 1


async def _meter(conn: psycopg.AsyncConnection[Any], user_id: str) -> int:
    cur = await conn.execute("SELECT sum(runs) FROM monthly_usage WHERE user_id = %s", (user_id,))
    row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def test_claim_uses_the_due_index_with_ten_thousand_endpoints(
    rows: Rows, conn: psycopg.AsyncConnection[Any]
) -> None:
    await conn.execute(
        """
        INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms,
                               next_run_at)
        SELECT gen_random_uuid()::text, %(job)s, %(user)s, 'e' || g, 'http://x/' || g, 1000,
               now() + (g %% 1000) * interval '1 millisecond' * 10
        FROM generate_series(1, 10000) AS g
        """,
        {"job": rows.job_id, "user": rows.user_id},
    )
    await conn.execute("ANALYZE endpoints")
    await conn.execute("ANALYZE jobs")
    now = utc()
    params = claim_params(
        worker="w",
        lease="w#1",
        now=now,
        horizon=now + timedelta(seconds=0.25),
        limit=100,
        lease_s=30,
    )
    async with conn.transaction(force_rollback=True):
        cur = await conn.execute(f"EXPLAIN (FORMAT JSON) {CLAIM_SQL}", params)
        row = await cur.fetchone()
    assert row is not None
    scans = plan_scans(row[0][0]["Plan"])
    assert ("Index Scan", "ix_endpoints_due") in scans, scans
    assert not any(kind == "Seq Scan" and rel == "endpoints" for kind, rel in scans), scans


async def test_finish_statements_use_primary_keys(
    rows: Rows, conn: psycopg.AsyncConnection[Any]
) -> None:
    params = {"job": rows.job_id, "user": rows.user_id}
    await conn.execute(
        """
        INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms,
                               next_run_at)
        SELECT 'e' || g, %(job)s, %(user)s, 'e' || g, 'http://x/' || g, 1000, now()
        FROM generate_series(1, 10000) AS g
        """,
        params,
    )
    await conn.execute(
        """
        INSERT INTO runs (id, endpoint_id, user_id, source, started_at, due_at, status)
        SELECT 'r' || g, 'e' || (g %% 10000 + 1), %(user)s, 'baseline-interval',
               now() - g * interval '1 second', now() - g * interval '1 second', 'success'
        FROM generate_series(1, 50000) AS g
        """,
        params,
    )
    await conn.execute("ANALYZE endpoints")
    await conn.execute("ANALYZE runs")
    now = utc().isoformat()
    leases = json.dumps([{"id": f"e{i}", "lease": "w#1"} for i in range(1, 101)])
    write = {
        "runs": json.dumps(
            [
                {"id": f"r{i}", "status": "success", "started_at": now, "finished_at": now}
                for i in range(1, 101)
            ]
        ),
        "endpoints": json.dumps(
            [
                {"id": f"e{i}", "lease": "w#1", "next_run_at": now, "source": "x", "failures": 0}
                for i in range(1, 101)
            ]
        ),
    }
    for sql, params in ((LOCK_SQL, {"leases": leases, "min_floor": 0}), (WRITE_SQL, write)):
        async with conn.transaction(force_rollback=True):
            cur = await conn.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            row = await cur.fetchone()
        assert row is not None
        scans = plan_scans(row[0][0]["Plan"])
        assert not any(kind == "Seq Scan" for kind, _ in scans), scans


def test_the_finish_reread_covers_every_field_of_the_governors_state() -> None:
    from cronicorn.store.run_writes import _STATE_COLUMNS

    assert set(_STATE_COLUMNS) == {f.name for f in dataclasses.fields(ScheduleState)}
