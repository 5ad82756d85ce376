"""Run history, health, sessions, dashboard aggregates and signing keys at the store level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import NOW, add_run, add_session, interval_endpoint
from cronicorn.schemas.dashboard import ActivityTimeline, DashboardStats
from cronicorn.store import ai_sessions as session_store
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store
from cronicorn.store import planner as planner_store
from cronicorn.store import runs as run_store
from cronicorn.store import signing_keys as key_store
from cronicorn.store import stats
from cronicorn.store.errors import Conflict, NotFound


async def _endpoint(engine: AsyncEngine, user_id: str) -> tuple[str, str]:
    async with engine.begin() as conn:
        job = await job_store.create(conn, user_id, name="job", description=None, now=NOW)
        row = await endpoint_store.create(conn, user_id, job.id, interval_endpoint(), NOW)
    return job.id, row.id


async def test_run_list_filters_pages_and_totals(engine: AsyncEngine, alice: str) -> None:
    _, endpoint_id = await _endpoint(engine, alice)
    async with engine.begin() as conn:
        for i in range(30):
            status = "failed" if i % 3 == 0 else "success"
            await add_run(
                conn,
                user_id=alice,
                endpoint_id=endpoint_id,
                started_at=NOW - timedelta(minutes=i),
                status=status,
            )
        page = await run_store.page_for_endpoint(conn, alice, endpoint_id, limit=5, offset=5)
        assert page.total == 30
        expected = [NOW - timedelta(minutes=i) for i in range(5, 10)]
        assert [r.started_at for r in page.items] == expected
        failed = await run_store.page_for_endpoint(
            conn, alice, endpoint_id, status="failed", limit=100
        )
        assert failed.total == 10
        assert {r.status for r in failed.items} == {"failed"}
        window = await run_store.page_for_endpoint(
            conn,
            alice,
            endpoint_id,
            since=NOW - timedelta(minutes=9),
            until=NOW - timedelta(minutes=4),
        )
        assert window.total == 5


async def test_runs_of_another_user_are_not_found(
    engine: AsyncEngine, alice: str, bob: str
) -> None:
    _, endpoint_id = await _endpoint(engine, alice)
    async with engine.begin() as conn:
        run_id = await add_run(conn, user_id=alice, endpoint_id=endpoint_id, started_at=NOW)
        with pytest.raises(NotFound):
            await run_store.page_for_endpoint(conn, bob, endpoint_id)
        with pytest.raises(NotFound):
            await run_store.get_detail(conn, bob, run_id)
        detail = await run_store.get_detail(conn, alice, run_id)
    assert detail.endpoint_name == "ping"


async def test_health_counts_window_and_streak(engine: AsyncEngine, alice: str) -> None:
    _, endpoint_id = await _endpoint(engine, alice)
    statuses = ["failed", "failed", "success", "failed", "success"]  # newest first
    async with engine.begin() as conn:
        for i, status in enumerate(statuses):
            await add_run(
                conn,
                user_id=alice,
                endpoint_id=endpoint_id,
                started_at=NOW - timedelta(hours=i * 10),
                status=status,
            )
        summary = await run_store.health(conn, alice, endpoint_id, NOW - timedelta(hours=24))
    assert (summary.success_count, summary.failure_count) == (1, 2)
    assert summary.failure_streak == 2
    assert summary.last_status == "failed"
    assert summary.avg_duration_ms == 100.0


async def test_sessions_page_and_detail(engine: AsyncEngine, alice: str, bob: str) -> None:
    _, endpoint_id = await _endpoint(engine, alice)
    async with engine.begin() as conn:
        ids = [
            await add_session(
                conn, user_id=alice, endpoint_id=endpoint_id, analyzed_at=NOW - timedelta(hours=i)
            )
            for i in range(3)
        ]
        rows, total = await session_store.list_for_endpoint(conn, alice, endpoint_id, limit=2)
        assert total == 3
        assert [r.id for r in rows] == ids[:2]
        detail = await session_store.get(conn, alice, ids[2])
        assert detail.endpoint_name == "ping"
        with pytest.raises(NotFound):
            await session_store.get(conn, bob, ids[0])


async def test_dashboard_buckets_in_utc(engine: AsyncEngine, alice: str) -> None:
    job_id, endpoint_id = await _endpoint(engine, alice)
    start = datetime(2025, 3, 10, 0, 0, tzinfo=UTC)
    async with engine.begin() as conn:
        await add_run(conn, user_id=alice, endpoint_id=endpoint_id, started_at=start)
        await add_run(
            conn,
            user_id=alice,
            endpoint_id=endpoint_id,
            started_at=start + timedelta(hours=5, minutes=59),
            status="failed",
        )
        await add_session(
            conn, user_id=alice, endpoint_id=endpoint_id, analyzed_at=start + timedelta(hours=1)
        )
        query = stats.StatsQuery(
            user_id=alice, start=start, end=start + timedelta(hours=24), now=NOW
        )
        data = await stats.dashboard(conn, query)
    series = data.runs
    assert len(series) == 24
    assert series[0] == stats.RunPoint(start, success=1, failed=0)
    assert series[5] == stats.RunPoint(start + timedelta(hours=5), success=0, failed=1)
    assert data.totals.runs == 2
    assert data.success_rate == stats.SuccessRate(50.0, "stable")
    assert data.job_health == [stats.JobRuns(job_id, "job", success=1, failed=1)]
    assert data.session_series[0].sessions == 1
    assert data.endpoints == stats.Counts(total=1, active=1, paused=0)
    shown = DashboardStats.of(data).model_dump(by_alias=True)  # the API's labels: UTC hours
    assert shown["runTimeSeries"][0] == {"date": "2025-03-10 00:00:00", "success": 1, "failure": 0}
    assert shown["runTimeSeries"][5] == {"date": "2025-03-10 05:00:00", "success": 0, "failure": 1}
    assert shown["aiSessionTimeSeriesMaxStacked"] == 1.1


def test_bucket_choice_targets_about_24_points() -> None:
    start = datetime(2025, 1, 1, 7, 30, tzinfo=UTC)
    week = stats.choose_buckets(start, start + timedelta(days=7))
    assert (week.size, week.hourly) == (timedelta(hours=8), True)
    assert week.starts[0] == datetime(2025, 1, 1, 0, 0, tzinfo=UTC)
    quarter = stats.choose_buckets(start, start + timedelta(days=90))
    assert (quarter.size, quarter.hourly) == (timedelta(days=7), False)


async def test_activity_merges_runs_and_sessions(engine: AsyncEngine, alice: str) -> None:
    _, endpoint_id = await _endpoint(engine, alice)
    async with engine.begin() as conn:
        await add_run(conn, user_id=alice, endpoint_id=endpoint_id, started_at=NOW)
        await add_session(
            conn,
            user_id=alice,
            endpoint_id=endpoint_id,
            analyzed_at=NOW - timedelta(minutes=1),
            warnings=[{"code": "missing_reasoning", "message": "no reasoning"}],
        )
        await add_run(
            conn,
            user_id=alice,
            endpoint_id=endpoint_id,
            started_at=NOW - timedelta(minutes=2),
            status="failed",
        )
        query = stats.ActivityQuery(
            user_id=alice, start=NOW - timedelta(hours=1), end=NOW + timedelta(hours=1)
        )
        data = await stats.activity(conn, query)
        runs_only = await stats.activity(
            conn, stats.ActivityQuery(**{**query.__dict__, "event_type": "runs", "limit": 1})
        )
    assert [e.kind for e in data.events] == ["run", "session", "run"]
    session = data.events[1]
    assert isinstance(session, stats.SessionEvent)
    assert session.warnings[0]["code"] == "missing_reasoning"
    assert data.total == 3
    shown = ActivityTimeline.of(data).model_dump(by_alias=True)
    assert shown["summary"] == {"runsCount": 2, "sessionsCount": 1, "successRate": 50.0}
    assert runs_only.total == 2
    assert len(runs_only.events) == 1


async def test_usage_counts_this_month(engine: AsyncEngine, alice: str) -> None:
    _, endpoint_id = await _endpoint(engine, alice)
    async with engine.begin() as conn:
        await add_run(conn, user_id=alice, endpoint_id=endpoint_id, started_at=NOW)
        await add_run(
            conn, user_id=alice, endpoint_id=endpoint_id, started_at=NOW - timedelta(days=20)
        )
        await add_session(conn, user_id=alice, endpoint_id=endpoint_id, analyzed_at=NOW, tokens=7)
        await planner_store.add_tokens(conn, alice, NOW, 11)  # the meter, as the planner counts
        await planner_store.add_tokens(conn, alice, NOW - timedelta(days=20), 5)  # last month
        data = await stats.usage(conn, alice, NOW)
    assert data == stats.MonthUsage(
        datetime(2025, 3, 1, tzinfo=UTC), endpoints=1, runs=1, ai_tokens=11
    )


def _fake_decrypt(blob: bytes, secret: str) -> bytes:
    return blob[::-1]


async def test_signing_keys_rotate_with_grace(engine: AsyncEngine, alice: str, bob: str) -> None:
    async with engine.begin() as conn:
        with pytest.raises(NotFound):
            await key_store.rotate(
                conn, alice, encrypted=b"x", prefix="sk_x", now=NOW, grace=timedelta(hours=1)
            )
        await key_store.create(conn, alice, encrypted=b"1yek", prefix="sk_1", now=NOW)
        with pytest.raises(Conflict):
            await key_store.create(conn, alice, encrypted=b"2yek", prefix="sk_2", now=NOW)
        _, retire_at = await key_store.rotate(
            conn, alice, encrypted=b"2yek", prefix="sk_2", now=NOW, grace=timedelta(hours=24)
        )
        assert retire_at == NOW + timedelta(hours=24)
        await key_store.create(conn, bob, encrypted=b"bbob", prefix="sk_b", now=NOW)

        keys = await key_store.load_signing_keys(
            conn, [alice, bob, "nobody"], NOW + timedelta(hours=1), "s", decrypt=_fake_decrypt
        )
        assert keys == {alice: [b"key2", b"key1"], bob: [b"bobb"]}
        later = await key_store.load_signing_keys(
            conn, [alice], NOW + timedelta(hours=25), "s", decrypt=_fake_decrypt
        )
        assert later == {alice: [b"key2"]}
        live = await key_store.list_live(conn, alice, NOW)
    assert [k.key_prefix for k in live] == ["sk_2", "sk_1"]
