"""Which endpoints the planner analyses, and that planners sharing a database never analyse
one endpoint twice at once (leases on `endpoint_analysis`, SKIP LOCKED)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store import planner as planner_store
from cronicorn.store.planner import CLAIM_SQL, ENROL_SQL, Seen
from cronicorn.store.tables import endpoint_analysis, jobs
from planner.planner_support import Rows
from support import plan_scans


async def claim(engine: AsyncEngine, rows: Rows, owner: str = "p1", limit: int = 10) -> list[str]:
    now = rows.clock.now
    async with engine.begin() as conn:
        return await planner_store.claim(
            conn, token=owner, now=now, since=now - timedelta(minutes=5), limit=limit, lease_s=60
        )


async def finish(engine: AsyncEngine, rows: Rows, ep: str, owner: str = "p1", **kw: object) -> None:
    now = rows.clock.now
    seen = Seen(
        analyzed_at=now,
        next_analysis_at=now + timedelta(minutes=kw.get("next_min", 30)),  # type: ignore[operator]
        failure_count=int(kw.get("failures", 0)),  # type: ignore[call-overload]
        last_status=str(kw.get("status", "success")),
    )
    async with engine.begin() as conn:
        await planner_store.release(conn, token=owner, endpoint_id=ep, seen=seen)


async def test_first_analysis_needs_a_run_within_the_lookback(
    engine: AsyncEngine, rows: Rows
) -> None:
    recent, old, never = await rows.endpoint(), await rows.endpoint(), await rows.endpoint()
    await rows.run(recent, {"a": 1}, ago_s=60)
    await rows.run(old, {"a": 1}, ago_s=3600)
    assert await claim(engine, rows) == [recent]
    assert never not in await claim(engine, rows, owner="p2")


async def test_a_leased_endpoint_is_not_claimed_again_until_released(
    engine: AsyncEngine, rows: Rows
) -> None:
    ep = await rows.endpoint()
    await rows.run(ep, {"a": 1})
    assert await claim(engine, rows, "p1") == [ep]
    assert await claim(engine, rows, "p2") == []
    async with engine.begin() as conn:  # a dead planner: its lease expired
        await conn.execute(
            update(endpoint_analysis).values(
                lease_until=endpoint_analysis.c.lease_until - timedelta(hours=1)
            )
        )
    assert await claim(engine, rows, "p2") == [ep]


async def test_concurrent_planners_split_the_work_without_overlap(
    engine: AsyncEngine, rows: Rows
) -> None:
    eps = [await rows.endpoint() for _ in range(12)]
    for ep in eps:
        await rows.run(ep, {"a": 1})
    got = await asyncio.gather(*(claim(engine, rows, f"p{i}", limit=5) for i in range(4)))
    flat = [e for part in got for e in part]
    assert sorted(flat) == sorted(eps)
    assert len(flat) == len(set(flat))


async def test_after_an_analysis_only_new_runs_and_a_trigger_bring_it_back(
    engine: AsyncEngine, rows: Rows
) -> None:
    ep = await rows.endpoint()
    await rows.run(ep, {"a": 1}, ago_s=60)
    assert await claim(engine, rows) == [ep]
    await finish(engine, rows, ep, next_min=30)
    rows.clock.now += timedelta(minutes=1)
    assert await claim(engine, rows) == []  # no new run
    await rows.run(ep, {"a": 2}, ago_s=10)
    assert await claim(engine, rows) == []  # new run, but not due, same status and failures
    rows.clock.now += timedelta(minutes=30)
    assert await claim(engine, rows) == [ep]  # due


async def test_risen_failures_or_a_recovery_trigger_early(engine: AsyncEngine, rows: Rows) -> None:
    ep = await rows.endpoint()
    await rows.run(ep, {"a": 1}, ago_s=60)
    assert await claim(engine, rows) == [ep]
    await finish(engine, rows, ep, next_min=600, failures=0)
    rows.clock.now += timedelta(seconds=30)
    await rows.run(ep, None, ago_s=5, status="failed", code=500)
    assert await claim(engine, rows) == [ep]  # it started failing
    await finish(engine, rows, ep, next_min=600, failures=1)
    rows.clock.now += timedelta(seconds=30)
    await rows.run(ep, {"a": 2}, ago_s=5)  # unrelated news would not do: this one recovered
    assert await claim(engine, rows) == [ep]
    await finish(engine, rows, ep, next_min=600, failures=0)
    rows.clock.now += timedelta(seconds=30)
    await rows.run(ep, {"a": 3}, ago_s=5)
    assert await claim(engine, rows) == []  # still fine, not due


async def test_a_paused_endpoint_is_analysed_when_a_sibling_has_news(
    engine: AsyncEngine, rows: Rows
) -> None:
    paused = await rows.endpoint(paused_until=rows.clock.now + timedelta(hours=2))
    sibling = await rows.endpoint()
    await rows.run(paused, {"a": 1}, ago_s=120)
    assert await claim(engine, rows) == [paused]
    await finish(engine, rows, paused, next_min=0)
    rows.clock.now += timedelta(minutes=1)
    assert await claim(engine, rows) == []
    await rows.run(sibling, {"load_status": "normal"}, ago_s=5)
    assert paused in await claim(engine, rows)


async def test_off_mode_archived_and_paused_jobs_are_never_claimed(
    engine: AsyncEngine, rows: Rows
) -> None:
    off = await rows.endpoint(ai_mode="off")
    archived = await rows.endpoint(archived_at=rows.clock.now)
    paused_job = await rows.job(status="paused")
    in_paused_job = await rows.endpoint(paused_job)
    off_job = await rows.job(ai_mode="off")
    in_off_job = await rows.endpoint(off_job)
    overrides = await rows.endpoint(off_job, ai_mode="suggest")
    for ep in (off, archived, in_paused_job, in_off_job, overrides):
        await rows.run(ep, {"a": 1})
    assert await claim(engine, rows) == [overrides]
    async with engine.connect() as conn:
        assert await conn.scalar(select(jobs.c.ai_mode).where(jobs.c.id == rows.job_id)) == "auto"


HISTORY = {"runs", "ai_sessions", "ai_suggestions"}  # tables that grow with every run


async def test_the_claim_reads_no_history_and_leases_by_primary_key_at_scale(
    engine: AsyncEngine, rows: Rows
) -> None:
    """10k endpoints in 100 jobs, all analysed once: the claim's plan never touches the run
    or session history (however long it grows), reads `endpoints` in at most two passes (the
    job news and the candidates; no per-row subquery over siblings), and updates the leases
    through the primary key."""
    now = rows.clock.now
    params = {"user": rows.user_id, "now": now}
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO jobs (id, user_id, name) "
                "SELECT 'j' || g, :user, 'job ' || g FROM generate_series(1, 100) AS g"
            ),
            params,
        )
        await conn.execute(
            text(
                """
                INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms,
                                       next_run_at, last_run_at)
                SELECT 'e' || g, 'j' || (g % 100 + 1), :user, 'e' || g, 'http://x/' || g,
                       1000, :now, :now - g * interval '1 second'
                FROM generate_series(1, 10000) AS g
                """
            ),
            params,
        )
        await conn.execute(
            text(
                """
                INSERT INTO endpoint_analysis (endpoint_id, user_id, last_analyzed_at,
                                               next_analysis_at)
                SELECT 'e' || g, :user, :now - interval '1 hour', :now + interval '1 hour'
                FROM generate_series(1, 10000) AS g
                """
            ),
            params,
        )
        for table in ("jobs", "endpoints", "endpoint_analysis"):
            await conn.execute(text(f"ANALYZE {table}"))
        statements = (
            (ENROL_SQL, {"since": now - timedelta(minutes=5)}),
            (CLAIM_SQL, {"now": now, "limit": 10, "token": "p1", "lease_s": 60}),
        )
        plans = []
        for sql, values in statements:
            plan = await conn.scalar(text(f"EXPLAIN (FORMAT JSON) {sql.text}"), values)
            plans.append(plan_scans(plan[0]["Plan"]))
        table_of = {row[0]: row[1] for row in await conn.execute(text(INDEXES))}
    for scans in plans:
        read = [table_of.get(relation, relation) for _, relation in scans]
        assert not set(read) & HISTORY, scans
        assert read.count("endpoints") <= 2, scans
    assert ("Index Scan", "pk_endpoint_analysis") in plans[1], plans[1]


INDEXES = "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = 'public'"
