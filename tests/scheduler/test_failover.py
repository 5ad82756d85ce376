"""Failover through PostgreSQL itself: a lease whose worker's liveness lock is free is taken
over at once, one whose worker holds it only when it expires; the liveness lock comes back
after its connection is cut; health says `degraded` while the database is out of reach."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.scheduler.liveness import Liveness
from cronicorn.store.claims import (
    LIVENESS_CLASS,
    TAKE_OVER_SQL,
    WORKER_LOST,
    claim_due,
    lease_token,
    renew_leases,
    take_over,
)
from cronicorn.store.tables import endpoints
from scheduler.conftest import Rows, Target, running_scheduler, terminate_backends, utc
from support import plan_scans, until


@contextlib.asynccontextmanager
async def holding(url: str, key: int) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A session holding liveness lock `key`, as a live scheduler's does."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as session:
        await session.execute("SELECT pg_advisory_lock(%s, %s)", (LIVENESS_CLASS, key))
        yield session


async def _claim_one(conn: psycopg.AsyncConnection[Any], lease: str) -> str:
    now = utc()
    (claim,) = await claim_due(
        conn, worker=lease.split("#")[0], lease=lease, now=now, horizon=now, limit=1, lease_s=30
    )
    assert claim.run_id is not None
    return claim.run_id


async def _take(conn: psycopg.AsyncConnection[Any], *, dead_owners: bool = True) -> set[str]:
    lost = await take_over(
        conn, lease=lease_token("taker", 1, 3), now=utc(), lease_s=30, dead_owners=dead_owners
    )
    return {x.endpoint_id for x in lost}


async def test_a_lease_whose_owner_lock_is_free_is_taken_over_at_once(
    rows: Rows, conn: psycopg.AsyncConnection[Any], database_url: str, engine: AsyncEngine
) -> None:
    alive, gone, legacy = await rows.endpoints(
        ["http://x/alive", "http://x/gone", "http://x/legacy"], first_at=utc(seconds=-1)
    )
    async with holding(database_url, 3), holding(database_url, 1):  # the taker, the live one
        alive_run = await _claim_one(conn, lease_token("alive", 1, 1))
        async with holding(database_url, 2):
            gone_run = await _claim_one(conn, lease_token("gone", 1, 2))
        await _claim_one(conn, lease_token("legacy", 1))  # an older version: no key
        assert await _take(conn, dead_owners=False) == set(), "within the grace: expiry only"
        assert await _take(conn) == {gone}, "the worker whose session ended, at once"
        (closed,) = await rows.runs(gone)
        assert closed["id"] == gone_run
        assert (closed["status"], closed["error_message"]) == ("failed", WORKER_LOST)
        assert (await rows.endpoint_row(gone))["lease_owner"] == lease_token("taker", 1, 3)
        assert await _take(conn) == set(), "taken once; the taker's own lease is alive"
        assert await renew_leases(conn, [(gone, lease_token("gone", 1, 2))], lease_s=30) == 0

        async with engine.begin() as c:  # the live worker hangs: its lease runs out
            await c.execute(
                update(endpoints)
                .where(endpoints.c.id.in_([alive, legacy]))
                .values(lease_until=utc(seconds=-1))
            )
        assert await _take(conn, dead_owners=False) == {alive, legacy}
    (run,) = await rows.runs(alive)
    assert (run["id"], run["error_message"]) == (alive_run, WORKER_LOST)


async def test_a_lock_held_in_another_database_is_no_sign_of_life(
    rows: Rows, conn: psycopg.AsyncConnection[Any], database_url: str
) -> None:
    endpoint = await rows.endpoint("http://x/a", first_at=utc(seconds=-1))
    other = urlsplit(database_url)._replace(path="/postgres").geturl()
    async with holding(database_url, 3), holding(other, 7):
        await _claim_one(conn, lease_token("elsewhere", 1, 7))
        assert await _take(conn) == {endpoint}


async def test_concurrent_take_overs_share_the_dead_workers_endpoints(
    rows: Rows, conn: psycopg.AsyncConnection[Any], database_url: str
) -> None:
    ids = await rows.endpoints([f"http://x/{i}" for i in range(60)], first_at=utc(seconds=-1))
    now = utc()
    await claim_due(
        conn, worker="dead", lease=lease_token("dead", 1, 9), now=now, horizon=now,
        limit=100, lease_s=30,
    )  # fmt: skip

    async def taker(n: int) -> list[str]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
            got: list[str] = []
            while await _still_dead(c):
                lost = await take_over(
                    c, lease=lease_token(f"t{n}", 1, 3), now=utc(), lease_s=30,
                    dead_owners=True, limit=7,
                )  # fmt: skip
                got += [x.endpoint_id for x in lost]
            return got

    async with holding(database_url, 3):
        taken = await asyncio.gather(*(taker(n) for n in range(4)))
    flat = [e for t in taken for e in t]
    assert sorted(flat) == sorted(ids), "each endpoint taken over exactly once"
    history = await rows.runs()
    assert len(history) == 60
    assert all(r["error_message"] == WORKER_LOST for r in history)


async def _still_dead(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute("SELECT count(*) FROM endpoints WHERE lease_owner LIKE 'dead#%%'")
    row = await cur.fetchone()
    return bool(row and row[0])


async def test_the_take_over_reads_only_leased_rows(
    rows: Rows, conn: psycopg.AsyncConnection[Any]
) -> None:
    await conn.execute(
        """
        INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms,
                               next_run_at)
        SELECT 'e' || g, %(job)s, %(user)s, 'e' || g, 'http://x/' || g, 1000, now()
        FROM generate_series(1, 10000) AS g
        """,
        {"job": rows.job_id, "user": rows.user_id},
    )
    await conn.execute("ANALYZE endpoints")
    params = {
        "lease": "t#1@3", "now": utc(), "lease_s": 30, "limit": 500, "error": WORKER_LOST,
        "dead_owners": True, "liveness_class": LIVENESS_CLASS, "scan": 1000, "swept": [],
    }  # fmt: skip
    async with conn.transaction(force_rollback=True):
        cur = await conn.execute(f"EXPLAIN (FORMAT JSON) {TAKE_OVER_SQL}", params)
        row = await cur.fetchone()
    assert row is not None
    scans = plan_scans(row[0][0]["Plan"])
    assert ("Index Scan", "ix_endpoints_due") in scans, scans  # no lease index (0013)
    assert ("Index Scan", "ix_runs_running") in scans, scans
    assert not any(kind == "Seq Scan" and rel == "endpoints" for kind, rel in scans), scans


async def _lock_holders(url: str, key: int) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        cur = await c.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s AND objid = %s AND objsubid = 2",
            (LIVENESS_CLASS, key),
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_the_liveness_lock_is_taken_again_after_its_session_is_cut(
    database_url: str,
) -> None:
    liveness = Liveness(database_url, check_every_s=0.1, grace_s=60)
    stop = asyncio.Event()
    task = asyncio.create_task(liveness.run(stop))
    try:
        await asyncio.wait_for(liveness.held.wait(), 10)
        key = liveness.key
        assert liveness.problem is None
        assert await _lock_holders(database_url, key) == 1
        assert not liveness.may_take_over_dead(), "not before the grace period"
        assert await terminate_backends(database_url, "cronicorn-scheduler:liveness") == 1
        await until(lambda: not liveness.held.is_set(), timeout=10, what="the loss noticed")
        assert liveness.problem is not None
        assert liveness.problem.startswith("cannot reach PostgreSQL")
        await asyncio.wait_for(liveness.held.wait(), 10)
        assert liveness.key == key, "the same key, so leases in flight stay ours"
        assert liveness.problem is None
    finally:
        stop.set()
        await task
        await liveness.close()
    assert await _lock_holders(database_url, key) == 0, "closing releases it"


async def test_a_key_still_held_is_replaced_by_a_fresh_one(database_url: str) -> None:
    liveness = Liveness(database_url, check_every_s=0.1)
    taken = liveness.key
    stop = asyncio.Event()
    async with holding(database_url, taken):  # e.g. our old session, lingering on the server
        task = asyncio.create_task(liveness.run(stop))
        try:
            await asyncio.wait_for(liveness.held.wait(), 10)
            assert liveness.key != taken
            assert await _lock_holders(database_url, liveness.key) == 1
        finally:
            stop.set()
            await task
            await liveness.close()


async def test_health_is_degraded_while_the_database_is_out_of_reach(
    rows: Rows, target: Target, database_url: str, engine: AsyncEngine
) -> None:
    await rows.endpoints([target.url(f"/ok/{i}") for i in range(5)])
    name = urlsplit(database_url).path.lstrip("/")
    admin = urlsplit(database_url)._replace(path="/postgres").geturl()
    async with (
        running_scheduler(database_url, engine, connect_timeout_s=2) as scheduler,
        await psycopg.AsyncConnection.connect(admin, autocommit=True) as dba,
    ):

        async def status() -> str:
            return str((await scheduler.health())["status"])

        await until(lambda: target.count("/ok/") >= 5, timeout=15, what="the scheduler to run")
        assert await status() == "ok"
        assert "reason" not in await scheduler.health()
        try:
            await dba.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await dba.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            await until(lambda: _is(status, "degraded"), timeout=15, what="degraded")

            async def lock_lost() -> bool:
                reason = str((await scheduler.health()).get("reason"))
                return reason.startswith("cannot reach PostgreSQL: ") and (
                    "not currently accepting connections" in reason
                )

            await until(lock_lost, timeout=15, what="the liveness lock's loss as the reason")
            await asyncio.sleep(0.5)  # let calls claimed before the cut finish
            outage = target.count("/ok/")
        finally:
            await dba.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await until(lambda: _is(status, "ok"), timeout=15, what="ok again")
        assert "reason" not in await scheduler.health()
        await until(lambda: target.count("/ok/") > outage, timeout=15, what="runs again")
    async with engine.connect() as c:  # the pool's connections were cut too
        assert (await c.execute(text("SELECT 1"))).scalar() == 1


async def _is(status: Any, wanted: str) -> bool:
    return bool(await status() == wanted)
