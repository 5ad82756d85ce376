"""The overlap policy with several schedulers on one database: `skip` records each skipped
slot once, `queue_one` runs the last one right after, `allow` runs concurrently up to its
cap; never two runs for one slot."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import timedelta
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.tables import endpoints, runs
from scheduler.conftest import Rows, running_scheduler, serve_target, utc
from support import until


class Gate:
    """A handler whose calls last `seconds[n]` (the last value for later calls); it tracks
    how many are in flight at once."""

    def __init__(self, *seconds: float) -> None:
        self.seconds = list(seconds)
        self.calls = 0
        self.now = 0
        self.most = 0

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        n = self.calls
        self.calls += 1
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(self.seconds[min(n, len(self.seconds) - 1)])
        finally:
            self.now -= 1
        return web.json_response({"call": n})


def _skipped(mode: str) -> float:
    value = REGISTRY.get_sample_value("cronicorn_scheduler_skipped_slots_total", {"overlap": mode})
    return value or 0.0


async def _by_due(engine: AsyncEngine, endpoint: str) -> list[dict[str, Any]]:
    query = select(runs).where(runs.c.endpoint_id == endpoint).order_by(runs.c.due_at)
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]


async def test_skip_records_every_overlapped_slot_once(
    database_url: str, engine: AsyncEngine
) -> None:
    rows = await Rows(engine).setup()
    gate = Gate(3.4, 0.0)
    before = _skipped("skip")
    async with serve_target({"/slow": gate}) as target:
        endpoint = await rows.endpoint(target.url("/slow"), first_at=utc(seconds=0.5))
        async with (
            running_scheduler(database_url, engine, worker_id="a"),
            running_scheduler(database_url, engine, worker_id="b"),
        ):

            async def ran_after() -> bool:
                return gate.calls >= 2 and await rows.run_count(endpoint, status="success") >= 2

            await until(ran_after, timeout=30, what="the run after the slow one")
    first, *later = await _by_due(engine, endpoint)
    assert first["status"] == "success"
    assert first["finished_at"] - first["started_at"] >= timedelta(seconds=3.4)
    skipped = [r for r in later if r["status"] == "skipped"]
    assert [r["due_at"] - first["due_at"] for r in skipped] == [
        timedelta(seconds=k) for k in (1, 2, 3)
    ], "each slot the slow run overlapped, once"
    assert all("overlap skip" in r["error_message"] for r in skipped)
    ran = [r for r in later if r["status"] != "skipped"]
    assert ran[0]["due_at"] - first["due_at"] == timedelta(seconds=4), "then the grid goes on"
    assert gate.most == 1
    dues = [r["due_at"] for r in await _by_due(engine, endpoint)]
    assert len(dues) == len(set(dues))
    assert _skipped("skip") - before >= 3


async def test_queue_one_runs_the_last_overlapped_slot_right_after(
    database_url: str, engine: AsyncEngine
) -> None:
    rows = await Rows(engine).setup()
    gate = Gate(2.5, 0.0)
    async with serve_target({"/slow": gate}) as target:
        endpoint = await rows.endpoint(
            target.url("/slow"), first_at=utc(seconds=0.5), overlap="queue_one"
        )
        async with (
            running_scheduler(database_url, engine, worker_id="a"),
            running_scheduler(database_url, engine, worker_id="b"),
        ):

            async def three_ran() -> bool:
                return await rows.run_count(endpoint, status="success") >= 3

            await until(three_ran, timeout=30, what="three runs")
    first, skipped, queued, *_ = await _by_due(engine, endpoint)
    assert first["status"] == "success"
    assert skipped["status"] == "skipped"
    assert skipped["due_at"] - first["due_at"] == timedelta(seconds=1)
    assert "overlap queue_one" in skipped["error_message"]
    assert queued["status"] == "success"
    assert queued["due_at"] - first["due_at"] == timedelta(seconds=2), "the last slot it overlapped"
    assert queued["started_at"] >= first["finished_at"], "after the run, never beside it"
    assert queued["started_at"] - first["finished_at"] < timedelta(seconds=2), "right after"
    assert gate.most == 1


async def test_allow_runs_concurrently_up_to_its_cap_across_schedulers(
    database_url: str, engine: AsyncEngine
) -> None:
    rows = await Rows(engine).setup()
    gate = Gate(2.2)
    async with serve_target({"/slow": gate}) as target:
        endpoint = await rows.endpoint(
            target.url("/slow"), first_at=utc(seconds=0.5), overlap="allow", max_concurrent=2
        )
        async with (
            running_scheduler(database_url, engine, worker_id="a"),
            running_scheduler(database_url, engine, worker_id="b"),
        ):

            async def several_done() -> bool:
                return await rows.run_count(endpoint, status="success") >= 4

            await until(several_done, timeout=40, what="four concurrent-capable runs")
            row = await rows.endpoint_row(endpoint)
            assert row["running"] <= 2
    assert gate.most == 2, "two at once, never three"
    history = await _by_due(engine, endpoint)
    dues = [r["due_at"] for r in history]
    assert len(dues) == len(set(dues)), "one run per slot"
    assert not [r for r in history if r["status"] == "skipped"]
    done = [r for r in history if r["status"] == "success"]
    overlapping = any(
        a["started_at"] < b["started_at"] < a["finished_at"] for a, b in itertools.pairwise(done)
    )
    assert overlapping, "a run started while the previous one was going"
    assert Counter(r["worker"] for r in history), "runs are recorded with their worker"
    async with engine.connect() as conn:
        left = (
            await conn.execute(
                select(endpoints.c.running, endpoints.c.lease_owner).where(
                    endpoints.c.id == endpoint
                )
            )
        ).one()
    assert tuple(left) == (0, None), "every run written back after the drain"
    assert all(r["lease_owner"] is None for r in history)
