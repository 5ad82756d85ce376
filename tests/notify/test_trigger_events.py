"""Events the database writes itself: a pause or resume by the planner or a response rule
(not by the user), and a run quota reached (once per user and month)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.audit import Actor, set_actor
from cronicorn.store.tables import endpoints
from notify.notify_support import add_channel, outbox_rows, subscribe_endpoint
from scheduler.conftest import Rows

LATER = datetime.now(UTC) + timedelta(days=1)


async def _pause(engine: AsyncEngine, endpoint: str, actor: Actor, until: datetime | None) -> None:
    async with engine.begin() as conn:
        await set_actor(conn, actor)
        await conn.execute(
            update(endpoints).where(endpoints.c.id == endpoint).values(paused_until=until)
        )


async def test_pauses_by_the_planner_or_a_rule_are_events_a_users_are_not(
    engine: AsyncEngine, rows: Rows
) -> None:
    endpoint = await rows.endpoint("https://example.com/x")
    channel = await add_channel(engine, rows.user_id, "json://example.com/hook")
    await subscribe_endpoint(engine, endpoint, channels=[channel])
    await _pause(engine, endpoint, Actor("user", id=rows.user_id), LATER)
    await _pause(engine, endpoint, Actor("user", id=rows.user_id), None)
    assert await outbox_rows(engine) == []
    await _pause(engine, endpoint, Actor("planner"), LATER)
    await _pause(engine, endpoint, Actor("rule"), None)
    found = await outbox_rows(engine)
    assert [(r["event"], r["payload"]["by"]) for r in found] == [
        ("paused", "planner"),
        ("resumed", "rule"),
    ]
    assert found[0]["payload"]["endpointId"] == endpoint
    assert found[0]["channel_id"] == channel


async def test_a_reached_run_quota_is_one_event_per_month(engine: AsyncEngine, rows: Rows) -> None:
    first, second = await rows.endpoints(["https://example.com/a", "https://example.com/b"])
    channel = await add_channel(engine, rows.user_id, "json://example.com/hook")
    for endpoint in (first, second):
        await subscribe_endpoint(engine, endpoint, channels=[channel])
    async with engine.begin() as conn:  # what the claim writes for slots past the quota
        await conn.execute(
            update(endpoints)
            .where(endpoints.c.id.in_([first, second]))
            .values(next_run_source="quota", next_run_at=LATER)
        )
    found = await outbox_rows(engine)
    assert [r["event"] for r in found] == ["quota"]


async def test_malformed_settings_never_block_the_change(engine: AsyncEngine, rows: Rows) -> None:
    endpoint = await rows.endpoint("https://example.com/x")
    await subscribe_endpoint(engine, endpoint, channels="not-a-list", onFailureAfter="x")
    await _pause(engine, endpoint, Actor("planner"), LATER)  # no error, no event
    assert await outbox_rows(engine) == []
