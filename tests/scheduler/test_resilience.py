"""The loop keeps going through database restarts and clock jumps, and keeps history bounded."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.ids import new_id
from cronicorn.scheduler.retention import RetentionPolicy
from cronicorn.store.tables import runs
from scheduler.conftest import (
    MovableClock,
    Rows,
    Target,
    running_scheduler,
    terminate_backends,
    utc,
)
from support import until


async def test_the_loop_reconnects_after_its_backends_are_terminated(
    rows: Rows, target: Target, database_url: str, engine: AsyncEngine
) -> None:
    ids = await rows.endpoints(
        [target.url(f"/ok/{i}") for i in range(30)], first_at=utc(), spread_s=1.0
    )
    async with running_scheduler(database_url, engine, lease_s=2):

        async def ran(n: int) -> bool:
            return await rows.run_count(status="success") >= n

        await until(lambda: ran(30), timeout=10, what="a first round")
        killed = 0
        for _ in range(3):  # mid-batch, whatever the loop is doing at that instant
            killed += await terminate_backends(database_url, "cronicorn-scheduler%")
            await asyncio.sleep(0.4)
        assert killed >= 3
        after = utc()

        async def every_endpoint_ran_again() -> bool:
            recent = [r for r in await rows.runs() if r["started_at"] > after]
            return {r["endpoint_id"] for r in recent if r["status"] == "success"} == set(ids)

        await until(every_endpoint_ran_again, timeout=20, what="runs after reconnecting")
    history = await rows.runs()
    assert all(r["status"] != "running" for r in history)
    assert len({(r["endpoint_id"], r["due_at"]) for r in history}) == len(history)


async def test_a_clock_moved_back_an_hour_causes_no_storm_and_no_early_run(
    rows: Rows, target: Target, database_url: str, engine: AsyncEngine
) -> None:
    await rows.endpoints([target.url(f"/ok/{i}") for i in range(10)], spread_s=0.5)
    clock = MovableClock()
    async with running_scheduler(database_url, engine, clock=clock):

        async def ran(n: int) -> bool:
            return len(target.hits) >= n

        await until(lambda: ran(20), timeout=10, what="two rounds")
        clock.offset = timedelta(hours=-1)
        before = len(target.hits)
        await asyncio.sleep(2.0)
        during = len(target.hits) - before
        assert during <= 10, f"at most the slots already claimed ahead run ({during})"
        clock.offset = timedelta(0)
        resumed = len(target.hits)
        await until(lambda: ran(resumed + 10), timeout=10, what="runs after the clock returned")
        await asyncio.sleep(2.0)
        assert len(target.hits) - resumed <= 10 * 4, "no catch-up storm"
    for run in await rows.runs():
        assert run["started_at"] >= run["due_at"], "never early by the scheduler's clock"


async def test_history_of_a_one_second_endpoint_stays_bounded(
    rows: Rows, target: Target, database_url: str, engine: AsyncEngine
) -> None:
    endpoint = await rows.endpoint(target.url("/ok/busy"))
    old = await rows.endpoint(target.url("/ok/old"), first_at=utc(days=1))
    async with engine.begin() as conn:
        await conn.execute(
            insert(runs),
            [
                {
                    "id": new_id(),
                    "endpoint_id": old,
                    "user_id": rows.user_id,
                    "status": "success",
                    "source": "baseline-interval",
                    "due_at": utc(days=-40, seconds=i),
                    "started_at": utc(days=-40, seconds=i),
                }
                for i in range(20)
            ],
        )
    policy = RetentionPolicy(days=30, per_endpoint=3, every_s=0.3)
    async with running_scheduler(database_url, engine, retention=policy):

        async def old_pruned() -> bool:
            return await rows.run_count(old) == 0

        await until(old_pruned, timeout=10, what="runs older than 30 days deleted")
        await until(lambda: target.count("/ok/busy") >= 6, timeout=15, what="six busy runs")

        async def bounded() -> bool:
            return await rows.run_count(endpoint) <= 3 + 1  # + the run of the last second

        await until(bounded, timeout=5, what="per-endpoint history trimmed")
    kept = await rows.runs(endpoint)
    assert kept[-1]["started_at"] > utc(seconds=-3), "the newest runs are the ones kept"
