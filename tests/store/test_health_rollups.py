"""Endpoint health counts its window from the hourly and daily rollups plus the partial hour
at the window's start from `runs`: the same answer as counting the window's runs, for any
`since` (on an hour, on a day, inside the current hour, in the future, before the history),
whatever the runs' statuses, sources and durations, and whoever wrote them."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import NOW, interval_endpoint
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store
from cronicorn.store import runs as run_store

# The window as the raw count computed it before the rollups (the oracle).
RAW_SQL = text(
    """
SELECT count(*) FILTER (WHERE status = 'success') AS success,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       avg(duration_ms) FILTER (WHERE status <> 'running') AS avg_ms
FROM runs WHERE endpoint_id = :e AND started_at >= :since
"""
)
STATUSES = ("success", "success", "success", "failed", "skipped", "running")
SOURCES = ("baseline-interval", "ai-interval", "test")


def _runs(endpoint_id: str, user_id: str, rng: random.Random) -> list[dict[str, Any]]:
    """~600 runs over the last 3 days and a few minutes ahead, on distinct microseconds."""
    offsets = rng.sample(range(-10 * 60_000, 3 * 86_400_000), 600)
    rows = []
    for i, ms in enumerate(offsets):
        started = NOW - timedelta(milliseconds=ms, microseconds=rng.randrange(1000))
        status = rng.choice(STATUSES)
        source = rng.choice(SOURCES)
        timed = status in ("success", "failed") and rng.random() < 0.9
        rows.append(
            {
                "id": f"r{endpoint_id}-{i}",
                "e": endpoint_id,
                "u": user_id,
                "status": status,
                "source": source,
                "due": None if source == "test" else started,
                "started": started,
                "ms": rng.randrange(2000) if timed else None,
            }
        )
    return rows


async def _endpoint(engine: AsyncEngine, user_id: str) -> str:
    async with engine.begin() as conn:
        job = await job_store.create(conn, user_id, name="job", description=None, now=NOW)
        return (await endpoint_store.create(conn, user_id, job.id, interval_endpoint(), NOW)).id


INSERT = text(
    "INSERT INTO runs (id, endpoint_id, user_id, status, source, due_at, started_at,"
    " duration_ms) VALUES (:id, :e, :u, :status, :source, :due, :started, :ms)"
)


async def test_health_from_rollups_equals_counting_the_runs(
    engine: AsyncEngine, alice: str, bob: str
) -> None:
    rng = random.Random(20261130)
    mine, other = await _endpoint(engine, alice), await _endpoint(engine, bob)
    rows = _runs(mine, alice, rng)
    async with engine.begin() as conn:  # several statements: per-statement triggers add up
        for chunk in range(0, len(rows), 150):
            await conn.execute(INSERT, rows[chunk : chunk + 150])
        await conn.execute(INSERT, _runs(other, bob, rng))  # same hours, another endpoint
    async with engine.begin() as conn:  # finishing runs rewrites their rollup rows
        await conn.execute(
            text(
                "UPDATE runs SET status = CASE WHEN random() < 0.5 THEN 'success'"
                " ELSE 'failed' END, duration_ms = 1234"
                " WHERE endpoint_id = :e AND status = 'running' AND id LIKE '%0'"
            ),
            {"e": mine},
        )
        await conn.execute(
            text(
                "UPDATE runs SET duration_ms = duration_ms + 7"
                " WHERE endpoint_id = :e AND id LIKE '%3'"
            ),
            {"e": mine},
        )
    windows = [timedelta(hours=h) for h in (0, 1, 4, 12, 23, 24, 48, 72, 73, 24 * 366)]
    windows += [timedelta(days=1, hours=h, minutes=30) for h in range(0, 24, 5)]
    windows += [timedelta(seconds=rng.randrange(4 * 86_400), microseconds=5) for _ in range(25)]
    windows += [timedelta(minutes=-5), timedelta(minutes=-30), timedelta(seconds=1)]
    async with engine.connect() as conn:
        for window in windows:
            since = NOW - window
            got = await run_store.health(conn, alice, mine, since)
            raw = (await conn.execute(RAW_SQL, {"e": mine, "since": since})).one()
            expected = (raw.success, raw.failed, None if raw.avg_ms is None else float(raw.avg_ms))
            assert (got.success_count, got.failure_count, got.avg_duration_ms) == expected, since


async def test_health_keeps_counting_runs_retention_pruned(engine: AsyncEngine, alice: str) -> None:
    """Like the dashboard's: pruning old runs does not change a window's counts."""
    endpoint_id = await _endpoint(engine, alice)
    rows = [
        {
            "id": f"p{i}",
            "e": endpoint_id,
            "u": alice,
            "status": "failed" if i % 3 == 0 else "success",
            "source": "baseline-interval",
            "due": NOW - timedelta(hours=i),
            "started": NOW - timedelta(hours=i),
            "ms": 100 * i,
        }
        for i in range(1, 49)
    ]
    async with engine.begin() as conn:
        await conn.execute(INSERT, rows)
    async with engine.connect() as conn:
        before = await run_store.health(conn, alice, endpoint_id, NOW - timedelta(hours=47))
        await conn.execute(
            text("DELETE FROM runs WHERE endpoint_id = :e AND started_at < :cut"),
            {"e": endpoint_id, "cut": NOW - timedelta(hours=10)},
        )
        after = await run_store.health(conn, alice, endpoint_id, NOW - timedelta(hours=47))
        await conn.rollback()
    assert (before.success_count, before.failure_count) == (
        32,
        15,
    )  # hours 1-47: every third failed
    assert after == before
