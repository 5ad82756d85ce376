"""The monthly run quota and the interval floor in the scheduler: runs are counted on the
meter in the claim statement, slots past the quota move to the 1st of next month (reference
defect 3: its "deferral" was a no-op), concurrent schedulers cannot overshoot, and minimum
intervals are raised to QUOTA_MIN_INTERVAL_MS for endpoints created before it was set."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain import NO_QUOTAS, Quotas, Source, month_start, next_month_start
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store.claims import claim_due, open_meters
from cronicorn.store.quotas import check_endpoint_room, release_deferred
from cronicorn.store.run_writes import lock_leased
from cronicorn.store.tables import endpoints, monthly_usage
from scheduler.conftest import MovableClock, Rows, Target, running_scheduler, utc
from support import a_session_waits_on_a_lock, until


async def _claim(
    conn: psycopg.AsyncConnection[Any], *, quota: int = 0, limit: int = 100, lease: str = "w#1"
) -> list[Any]:
    now = utc()
    return await claim_due(
        conn,
        worker="w",
        lease=lease,
        now=now,
        horizon=now,
        limit=limit,
        lease_s=30,
        runs_per_month=quota,
    )


async def _race(
    database_url: str, engine: AsyncEngine, *, quota: int, limit: int
) -> tuple[list[Any], list[Any]]:
    """Worker A claims in a transaction left open; worker B claims meanwhile, must block on
    the meter until A commits, and then sees A's count. Returns both batches."""
    connect = psycopg.AsyncConnection.connect
    async with (
        await connect(database_url, options="-c TimeZone=UTC") as a,
        await connect(database_url, autocommit=True, options="-c TimeZone=UTC") as b,
    ):
        first = await _claim(a, quota=quota, limit=limit, lease="a#1")
        second = asyncio.create_task(_claim(b, quota=quota, limit=limit, lease="b#1"))
        await until(
            lambda: a_session_waits_on_a_lock(engine),
            timeout=10,
            what="worker B blocked on the meter",
        )
        await a.commit()
        later = await asyncio.wait_for(second, 10)
    return first, later


async def _meter(engine: AsyncEngine, user_id: str, at: datetime | None = None) -> int | None:
    async with engine.connect() as c:
        value = await c.scalar(
            select(monthly_usage.c.runs).where(
                monthly_usage.c.user_id == user_id,
                monthly_usage.c.period_start == month_start(at or utc()),
            )
        )
    return None if value is None else int(value)


async def _set_meter(engine: AsyncEngine, user_id: str, runs: int) -> None:
    async with engine.begin() as c:
        await c.execute(
            insert(monthly_usage).values(
                user_id=user_id, period_start=month_start(utc()), runs=runs
            )
        )


async def test_every_started_run_is_counted_once_on_its_users_meter(
    rows: Rows, engine: AsyncEngine, conn: psycopg.AsyncConnection[Any]
) -> None:
    await rows.endpoints([f"http://x/{i}" for i in range(4)], first_at=utc(seconds=-5))
    bob = await rows.user()
    bob_job = await rows.job(bob)
    await rows.endpoint("http://x/bob", user_id=bob, job_id=bob_job, next_run_at=utc(seconds=-5))
    claims = await _claim(conn)
    assert len(claims) == 5
    assert await _meter(engine, rows.user_id) == 4
    assert await _meter(engine, bob) == 1
    # A slot that already has a run is claimed without a new run, and not counted again.
    async with engine.begin() as c:
        await c.execute(
            update(endpoints)
            .where(endpoints.c.user_id == bob)
            .values(lease_owner=None, lease_until=None)
        )
    again = await _claim(conn, lease="w#2")
    assert [c.run_id for c in again] == [None]
    assert await _meter(engine, bob) == 1


async def test_slots_past_the_monthly_quota_move_to_the_first_of_next_month(
    rows: Rows, engine: AsyncEngine, conn: psycopg.AsyncConnection[Any]
) -> None:
    ids = await rows.endpoints(
        [f"http://x/{i}" for i in range(5)], first_at=utc(seconds=-10), spread_s=5
    )
    bob = await rows.user()
    bob_job = await rows.job(bob)
    bobs = await rows.endpoint("http://x/bob", user_id=bob, job_id=bob_job, next_run_at=utc())
    await _set_meter(engine, rows.user_id, 7)

    claims = await _claim(conn, quota=10)
    claimed = {c.endpoint_id for c in claims}
    assert claimed == {*ids[:3], bobs}, "the oldest three of alice's slots, and bob's"
    assert await _meter(engine, rows.user_id) == 10
    assert await rows.run_count() == 4
    for endpoint_id in ids[3:]:
        row = await rows.endpoint_row(endpoint_id)
        assert row["next_run_at"] == next_month_start(utc())
        assert row["next_run_source"] == Source.QUOTA
        assert row["lease_owner"] is None, "deferred, not leased"
    # Nothing more of alice's runs this month, whatever becomes due.
    async with engine.begin() as c:
        await c.execute(
            update(endpoints)
            .where(endpoints.c.id.in_(ids[:3]))
            .values(lease_owner=None, lease_until=None, next_run_at=utc(seconds=-1))
        )
    assert await _claim(conn, quota=10, lease="w#2") == []
    assert await rows.run_count() == 4


async def test_concurrent_schedulers_cannot_pass_the_quota_together(
    rows: Rows, engine: AsyncEngine, database_url: str
) -> None:
    """Worker B picks other endpoints (SKIP LOCKED) but must wait for A's meter row and
    then read A's count: without that lock each would grant the last three places."""
    await rows.endpoints([f"http://x/{i}" for i in range(10)], first_at=utc(seconds=-5))
    await _set_meter(engine, rows.user_id, 7)
    first, later = await _race(database_url, engine, quota=10, limit=5)
    assert len(first) == 3
    assert later == []
    assert await _meter(engine, rows.user_id) == 10
    assert await rows.run_count() == 3


async def test_the_first_claims_of_a_month_cannot_pass_the_quota_together(
    rows: Rows, engine: AsyncEngine, database_url: str, conn: psycopg.AsyncConnection[Any]
) -> None:
    """No meter exists yet this month: the scheduler opens the month's meters before its
    first claim, so worker B has a row to wait on; without one, each would grant 3 places."""
    await rows.endpoints([f"http://x/{i}" for i in range(6)], first_at=utc(seconds=-5))
    assert await _meter(engine, rows.user_id) is None
    await open_meters(conn, utc())
    assert await _meter(engine, rows.user_id) == 0
    first, later = await _race(database_url, engine, quota=3, limit=3)
    assert (len(first), later) == (3, [])
    assert await _meter(engine, rows.user_id) == 3
    assert await rows.run_count() == 3


async def test_a_users_first_endpoint_opens_the_meter_under_a_run_quota(
    rows: Rows, engine: AsyncEngine
) -> None:
    config = {"name": "a", "url": "http://x/a", "baseline_interval_ms": 60_000}
    async with engine.begin() as c:
        await endpoint_store.create(c, rows.user_id, rows.job_id, config, utc())
    assert await _meter(engine, rows.user_id) is None, "no quota: no meter until a run"
    async with engine.begin() as c:
        await endpoint_store.create(
            c, rows.user_id, rows.job_id, config, utc(), quotas=Quotas(runs_per_month=5)
        )
    assert await _meter(engine, rows.user_id) == 0


async def test_lifting_the_quota_releases_deferred_endpoints(
    rows: Rows, engine: AsyncEngine, conn: psycopg.AsyncConnection[Any]
) -> None:
    ids = await rows.endpoints(["http://x/a", "http://x/b"], first_at=utc(seconds=-5))
    await _set_meter(engine, rows.user_id, 5)
    assert await _claim(conn, quota=5) == []
    now = utc()
    async with engine.begin() as c:
        assert await release_deferred(c, Quotas(runs_per_month=5), now) == 0, "still full"
        assert await release_deferred(c, Quotas(runs_per_month=6), now) == 2
    for endpoint_id in ids:
        row = await rows.endpoint_row(endpoint_id)
        assert (row["next_run_at"], row["next_run_source"]) == (now, Source.MISFIRE)
    assert len(await _claim(conn, quota=6)) == 1, "one place left this month"
    async with engine.begin() as c:
        assert await release_deferred(c, NO_QUOTAS, utc()) == 1, "quota switched off"


async def test_minimum_intervals_are_raised_to_the_quota_floor(
    rows: Rows, conn: psycopg.AsyncConnection[Any]
) -> None:
    loose, tight, high = await rows.endpoints(["http://x/a", "http://x/b", "http://x/c"])
    async with rows.engine.begin() as c:
        await c.execute(
            update(endpoints).where(endpoints.c.id == tight).values(min_interval_ms=500)
        )
        await c.execute(
            update(endpoints).where(endpoints.c.id == high).values(min_interval_ms=90_000)
        )
    claims = await _claim(conn)
    leases = [(c.endpoint_id, c.lease) for c in claims]
    async with conn.transaction(force_rollback=True):
        plain = await lock_leased(conn, leases)
        floored = await lock_leased(conn, leases, min_floor_ms=60_000)
    assert {k: v.state.min_interval_ms for k, v in plain.items()} == {
        loose: None,
        tight: 500,
        high: 90_000,
    }
    assert {k: v.state.min_interval_ms for k, v in floored.items()} == {
        loose: 60_000,
        tight: 60_000,
        high: 90_000,
    }


async def test_the_scheduler_stops_at_the_quota_and_resumes_next_month(
    rows: Rows, target: Target, database_url: str, engine: AsyncEngine
) -> None:
    endpoint_id = await rows.endpoint(target.url("/ok/q"), next_run_at=utc(seconds=0.2))
    bob = await rows.user()  # nothing due: his meters are opened all the same
    bob_job = await rows.job(bob)
    await rows.endpoint("http://x/bob", user_id=bob, job_id=bob_job, next_run_at=utc(days=90))
    clock = MovableClock()

    async def deferred() -> bool:
        row = await rows.endpoint_row(endpoint_id)
        return bool(row["next_run_source"] == Source.QUOTA)

    async with running_scheduler(
        database_url, engine, clock=clock, quotas=Quotas(runs_per_month=3)
    ) as scheduler:
        await until(deferred, timeout=15, what="deferral after three runs")
        assert target.count("/ok/q") == 3
        assert (await rows.endpoint_row(endpoint_id))["next_run_at"] == next_month_start(clock())
        assert await _meter(engine, bob, clock()) == 0
        # The next month begins: the meter starts again at zero.
        clock.offset = next_month_start(clock()) - datetime.now(UTC) + timedelta(seconds=0.5)
        scheduler.wake()

        async def ran_again() -> bool:
            return target.count("/ok/q") >= 4

        await until(ran_again, timeout=15, what="a run in the new month")
        assert await _meter(engine, bob, clock()) == 0, "the new month's meters were opened"
    runs = await rows.runs(endpoint_id)
    assert [r["source"] for r in runs][3] == Source.QUOTA, "the deferred slot runs first"
    assert await _meter(engine, rows.user_id, clock()) == len(runs) - 3


async def test_an_endpoint_create_under_quota_does_not_hold_up_claims(
    rows: Rows, engine: AsyncEngine, conn: psycopg.AsyncConnection[Any]
) -> None:
    """The create's lock on the user row must not block the claim's foreign-key checks."""
    await rows.endpoint("http://x/a", next_run_at=utc(seconds=-1))
    async with engine.connect() as creating:
        await check_endpoint_room(creating, rows.user_id, Quotas(max_endpoints=10))
        assert creating.in_transaction()
        claims = await asyncio.wait_for(_claim(conn), 5)
        await creating.rollback()
    assert len(claims) == 1
    assert claims[0].run_id is not None
