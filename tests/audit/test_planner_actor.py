"""The planner names itself in the audit log (kind `planner`, its AI session as id) whatever
the connection it writes on: inside `cronicorn up` it shares the API's engine, whose
connection name alone would make it "system". Its pauses then notify as the planner's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.ids import new_id
from cronicorn.planner.tools import Toolbox
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store.tables import audit_log, notify_outbox
from notify.notify_support import add_channel, subscribe
from scheduler.conftest import Rows

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


async def test_planner_changes_are_recorded_as_the_planner(engine: AsyncEngine) -> None:
    rows = await Rows(engine).setup()
    endpoint_id = await rows.endpoint("https://example.com/ping", baseline_interval_ms=60_000)
    channel = await add_channel(engine, rows.user_id, "json://hooks.example.com/cron")
    await subscribe(engine, rows.job_id, channels=[channel])
    async with engine.connect() as conn:
        row = await endpoint_store.get(conn, rows.user_id, endpoint_id)
    session_id = new_id()
    box = Toolbox(engine, row, session_id, lambda: NOW)
    until = (NOW + timedelta(hours=2)).isoformat()
    await box.call("pause_until", json.dumps({"untilIso": until, "reason": "flapping"}))

    async with engine.connect() as conn:
        entries = (
            await conn.execute(
                select(audit_log).where(
                    audit_log.c.entity == "endpoint", audit_log.c.action == "update"
                )
            )
        ).all()
        events = (await conn.execute(select(notify_outbox.c.event, notify_outbox.c.payload))).all()
    assert [
        ("paused_until" in e.changes, e.actor_kind, e.actor_id, e.actor_name) for e in entries
    ] == [(True, "planner", session_id, "planner")]
    assert [(e.event, e.payload["by"]) for e in events] == [("paused", "planner")]
