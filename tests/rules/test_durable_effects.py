"""Rule effects on siblings survive a crash between the batch and their application; a
detached run (overlap allow) whose worker is gone is closed once by a peer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.ids import new_id
from cronicorn.domain.rules import Effect
from cronicorn.store import detached_runs
from cronicorn.store.claims import WORKER_LOST
from cronicorn.store.rule_writes import queue_effects
from cronicorn.store.run_writes import RunOutcome
from cronicorn.store.tables import endpoints, rule_effects, runs
from scheduler.conftest import Rows, running_scheduler, utc
from support import until


async def _pending(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return len((await conn.execute(select(rule_effects.c.id))).all())


async def test_a_queued_sibling_effect_is_applied_by_any_scheduler(
    database_url: str, engine: AsyncEngine
) -> None:
    rows = await Rows(engine).setup()
    later = utc(hours=1)
    source = await rows.endpoint("http://127.0.0.1:9/source", first_at=later)
    sibling = await rows.endpoint("http://127.0.0.1:9/sibling", first_at=later)
    other_job = await rows.job()
    foreign = await rows.endpoint("http://127.0.0.1:9/foreign", first_at=later, job_id=other_job)
    until_at = utc(hours=5).replace(microsecond=0)

    def pause(target: str) -> Effect:
        return Effect(0, "shed", "pause", target, paused_until=until_at)

    # The batch that recorded the run committed with its effects queued, then its scheduler
    # died before applying them.
    effects = [(source, pause(sibling)), (source, pause(foreign)), (source, pause("gone"))]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await _queue(conn, effects)
    assert await _pending(engine) == 3

    async with running_scheduler(database_url, engine, worker_id="peer"):

        async def applied() -> bool:
            return await _pending(engine) == 0

        await until(applied, timeout=30, what="the peer to apply the queued effects")
    assert (await rows.endpoint_row(sibling))["paused_until"] == until_at
    assert (await rows.endpoint_row(foreign))["paused_until"] is None, "another job: refused"
    assert (await rows.endpoint_row(source))["paused_until"] is None


async def _queue(conn: psycopg.AsyncConnection[Any], effects: list[tuple[str, Effect]]) -> None:
    async with conn.transaction():
        await queue_effects(conn, effects)


async def _detached_run(engine: AsyncEngine, rows: Rows, lease: str, expires_in_s: float) -> Any:
    endpoint = await rows.endpoint(
        "http://127.0.0.1:9/allow", first_at=utc(hours=1), overlap="allow", running=1
    )
    run_id = new_id()
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            insert(runs).values(
                id=run_id,
                endpoint_id=endpoint,
                user_id=rows.user_id,
                status="running",
                source="baseline-interval",
                due_at=now,
                started_at=now,
                lease_owner=lease,
            )
        )
        await conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(lease_until=now + timedelta(seconds=expires_in_s))
        )
    return endpoint, run_id


async def test_a_detached_run_of_a_dead_worker_is_closed_once(
    database_url: str, engine: AsyncEngine
) -> None:
    rows = await Rows(engine).setup()
    dead, dead_run = await _detached_run(engine, rows, "gone:1:x#1@4242", 600)
    hung, hung_run = await _detached_run(engine, rows, "hung:1:x#1", -1)
    alive, _ = await _detached_run(engine, rows, "live:1:x#1", 600)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        now = datetime.now(UTC)
        assert set(await detached_runs.take_over(conn, now=now, dead_owners=False)) == {hung_run}
        assert set(await detached_runs.take_over(conn, now=now, dead_owners=True)) == {dead_run}
        assert await detached_runs.take_over(conn, now=now, dead_owners=True) == []
        # the dead worker's late write changes nothing
        late = RunOutcome(dead_run, "success", now, now)
        async with conn.transaction():
            await detached_runs.finish(conn, [("gone:1:x#1@4242", late)])
    for endpoint in (dead, hung):
        [run] = await rows.runs(endpoint)
        assert (run["status"], run["error_message"]) == ("failed", WORKER_LOST)
        assert run["lease_owner"] is None
        row = await rows.endpoint_row(endpoint)
        assert (row["running"], row["failure_count"]) == (0, 1)
    [kept] = await rows.runs(alive)
    assert kept["status"] == "running"
    assert (await rows.endpoint_row(alive))["running"] == 1
    async with engine.connect() as conn:
        assert (
            await conn.execute(select(endpoints.c.running).where(endpoints.c.id == alive))
        ).scalar_one() == 1
