"""Response rules in the scheduler: applied in the same write as the run, so the next slot
already follows them; clamped like hints; recorded on the run; acting on siblings of the same
job only; loops bounded."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.tables import audit_log, endpoints
from scheduler.conftest import Rows, running_scheduler, serve_target, utc
from support import until

DEEP = {
    "name": "deep queue",
    "when": {"jsonPath": "$.queue.depth", "op": ">", "value": 100},
    "then": {"action": "interval", "intervalMs": 1000, "ttlMinutes": 10},
}


def queue_handler(depths: list[int]) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        depth = depths.pop(0) if len(depths) > 1 else depths[0]
        return web.json_response({"queue": {"depth": depth}, "load_status": "high"})

    return handler


async def test_a_rule_tightens_the_next_slot_in_the_same_write(
    database_url: str, engine: AsyncEngine
) -> None:
    rows = await Rows(engine).setup()
    async with serve_target({"/queue": queue_handler([500])}) as target:
        endpoint = await rows.endpoint(
            target.url("/queue"), baseline_interval_ms=3_600_000, rules=[DEEP]
        )

        async def three_runs() -> bool:
            return await rows.run_count(endpoint, status="success") >= 3

        async with running_scheduler(database_url, engine):
            await until(three_runs, timeout=30, what="runs one second apart after the first")

    first, second, third = (await rows.runs(endpoint))[:3]
    assert first["rules_fired"] == [{"index": 0, "action": "interval", "name": "deep queue"}]
    assert third["rules_fired"] == first["rules_fired"]  # it fired each time
    assert second["source"] == third["source"] == "rule"  # not the hourly baseline
    assert second["due_at"] - first["due_at"] < timedelta(minutes=1)
    row = await rows.endpoint_row(endpoint)
    assert row["hint_interval_ms"] == 1000
    assert row["hint_source"] == "rule"
    assert row["hint_reason"] == "rule: deep queue"
    # Written by the first run only: the same hint is re-extended once a tenth of its TTL
    # (1 of 10 minutes) has passed, not on every run (one audit entry, not one per run).
    written = first["finished_at"] + timedelta(minutes=10)
    assert abs(row["hint_interval_expires_at"] - written) < timedelta(seconds=5)
    assert row["hint_interval_expires_at"] < third["finished_at"] + timedelta(minutes=10)
    async with engine.connect() as conn:
        changes = await conn.scalar(
            select(func.count())
            .select_from(audit_log)
            .where(audit_log.c.entity_id == endpoint, audit_log.c.actor_kind == "rule")
        )
    assert changes == 1


async def test_rule_hints_are_clamped_and_pauses_reach_siblings_of_the_job_only(
    database_url: str, engine: AsyncEngine
) -> None:
    rows = await Rows(engine).setup()
    far = utc(hours=5)
    async with serve_target({"/queue": queue_handler([500])}) as target:
        analytics = await rows.endpoint(target.url("/ok/analytics"), first_at=utc(hours=1))
        other_job = await rows.job()
        foreign = await rows.endpoint(
            target.url("/ok/foreign"), first_at=utc(hours=1), job_id=other_job
        )
        monitor = await rows.endpoint(
            target.url("/queue"),
            baseline_interval_ms=3_600_000,
            min_interval_ms=20_000,  # the rule asks for 1 s: held to 20 s
            rules=[
                DEEP,
                {
                    "when": {"jsonPath": "$.load_status", "op": "==", "value": "high"},
                    "then": {"action": "pause", "untilIso": far.isoformat(), "target": analytics},
                },
                {  # written around the API: another job's endpoint is never touched
                    "when": {"status": ["2xx"]},
                    "then": {"action": "pause", "forMinutes": 60, "target": foreign},
                },
            ],
        )

        async def ran() -> bool:
            return await rows.run_count(monitor, status="success") >= 1 and (
                (await rows.endpoint_row(analytics))["paused_until"] is not None
            )

        async with running_scheduler(database_url, engine):
            await until(ran, timeout=30, what="the monitor's run and its sibling action")

    run = (await rows.runs(monitor))[0]
    assert [f["action"] for f in run["rules_fired"]] == ["interval", "pause", "pause"]
    row = await rows.endpoint_row(monitor)
    assert row["next_run_source"] in {"clamped-min", "rule"}
    assert row["next_run_at"] - run["started_at"] >= timedelta(seconds=19)
    sibling = await rows.endpoint_row(analytics)
    assert sibling["paused_until"] == far
    assert sibling["next_run_source"] == "paused"
    assert sibling["next_run_at"] >= far - timedelta(seconds=1)
    assert (await rows.endpoint_row(foreign))["paused_until"] is None


async def test_oneshot_ping_pong_between_siblings_is_bounded(
    database_url: str, engine: AsyncEngine
) -> None:
    """A's rule runs B at once, B's rule runs A at once: never more than one run per
    second per endpoint (one hop per run, each at least MIN_GAP_MS ahead)."""
    rows = await Rows(engine).setup()
    async with serve_target() as target:
        a, b = await rows.endpoints(
            [target.url("/ok/a"), target.url("/ok/b")],
            first_at=utc(hours=1),
            baseline_interval_ms=3_600_000,
        )
        ping = {"when": {"status": ["2xx"]}, "then": {"action": "oneshot", "inMs": 0}}
        async with engine.begin() as conn:
            await conn.execute(
                update(endpoints)
                .where(endpoints.c.id == a)
                .values(rules=[{**ping, "then": {**ping["then"], "target": b}}], next_run_at=utc())
            )
            await conn.execute(
                update(endpoints)
                .where(endpoints.c.id == b)
                .values(rules=[{**ping, "then": {**ping["then"], "target": a}}])
            )

        async def four_runs() -> bool:
            return await rows.run_count(status="success") >= 4

        async with running_scheduler(database_url, engine):
            await until(four_runs, timeout=30, what="the ping-pong to go a few hops")
    runs = await rows.runs()
    for endpoint in (a, b):
        starts = sorted(r["started_at"] for r in runs if r["endpoint_id"] == endpoint)
        gaps = [(y - x).total_seconds() for x, y in itertools.pairwise(starts)]
        assert all(g >= 0.99 for g in gaps), gaps
