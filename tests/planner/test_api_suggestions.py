"""Suggest mode over the REST API: list, apply (same checks as a hint), dismiss, lapse,
and another user's suggestions answer 404. One clock drives the planner and the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from api.api_support import Client
from cronicorn.planner.session import Session
from cronicorn.store.tables import endpoints
from planner.fake_llm import FakeModel, call, submit, tools
from planner.planner_support import Rows


async def suggest(session: Session, fake: FakeModel, rows: Rows, ep: str, *calls: Any) -> None:
    fake.add(tools(*calls), submit("Would tighten."))
    result = await session.run(ep)
    assert result is not None
    assert result.outcome == "suggested"


async def test_apply_dismiss_lapse_and_isolation(
    clients: tuple[Client, Client], session: Session, fake: FakeModel, rows: Rows
) -> None:
    alice, bob = clients
    rows.user_id = alice.user_id
    rows.job_id = await rows.job(alice.user_id, ai_mode="suggest")
    ep = await rows.endpoint()
    interval = call("propose_interval", {"intervalMs": 30000, "ttlMinutes": 30, "reason": "q"})
    await suggest(session, fake, rows, ep, interval)

    status, body = await alice.call("GET", f"/endpoints/{ep}/suggestions")
    assert status == 200
    (first,) = body["suggestions"]
    assert first["action"] == "interval"
    assert first["args"] == {"intervalMs": 30000, "ttlMinutes": 30}
    assert first["status"] == "pending"
    assert (await rows.get(ep)).hint_interval_ms is None  # nothing changed yet

    assert (await bob.call("GET", f"/endpoints/{ep}/suggestions"))[0] == 404
    assert (await bob.call("POST", f"/suggestions/{first['id']}/apply"))[0] == 404

    status, applied = await alice.call("POST", f"/suggestions/{first['id']}/apply")
    assert status == 200
    assert applied["status"] == "applied"
    row = await rows.get(ep)
    assert row.hint_interval_ms == 30000
    assert row.hint_source == "ai"
    assert row.next_run_at == rows.clock.now + timedelta(seconds=30)
    status, again = await alice.call("POST", f"/suggestions/{first['id']}/apply")
    assert status == 409
    assert "applied" in again["error"]["message"]

    # A second session's suggestion, dismissed: nothing written.
    pause = call("pause_until", {"untilIso": (rows.clock.now + timedelta(hours=1)).isoformat()})
    await suggest(session, fake, rows, ep, pause)
    status, body = await alice.call("GET", f"/endpoints/{ep}/suggestions", status="pending")
    (second,) = body["suggestions"]
    status, dismissed = await alice.call("POST", f"/suggestions/{second['id']}/dismiss")
    assert status == 200
    assert dismissed["status"] == "dismissed"
    assert (await rows.get(ep)).paused_until is None

    # A third one lapses when its time passes.
    await suggest(session, fake, rows, ep, interval)
    rows.clock.now += timedelta(minutes=31)
    _, body = await alice.call("GET", f"/endpoints/{ep}/suggestions")
    assert body["suggestions"][0]["status"] == "expired"
    status, _ = await alice.call("POST", f"/suggestions/{body['suggestions'][0]['id']}/apply")
    assert status == 409


async def test_applying_checks_the_bounds_as_they_are_now(
    clients: tuple[Client, Client], session: Session, fake: FakeModel, rows: Rows
) -> None:
    alice, _ = clients
    rows.user_id = alice.user_id
    rows.job_id = await rows.job(alice.user_id)
    ep = await rows.endpoint(ai_mode="suggest")
    await suggest(session, fake, rows, ep, call("propose_interval", {"intervalMs": 20000}))
    async with rows.engine.begin() as conn:  # the owner raised the minimum since
        await conn.execute(
            update(endpoints).where(endpoints.c.id == ep).values(min_interval_ms=60000)
        )
    _, body = await alice.call("GET", f"/endpoints/{ep}/suggestions")
    status, error = await alice.call("POST", f"/suggestions/{body['suggestions'][0]['id']}/apply")
    assert status == 422
    assert "minimum" in error["error"]["message"]
    assert (await rows.get(ep)).hint_interval_ms is None
    _, body = await alice.call("GET", f"/endpoints/{ep}/suggestions")
    assert body["suggestions"][0]["status"] == "pending"  # nothing half-written


async def test_unknown_ids_answer_404(clients: tuple[Client, Client]) -> None:
    alice, _ = clients
    assert (await alice.call("POST", "/suggestions/nope/dismiss"))[0] == 404
    assert (await alice.call("GET", "/endpoints/nope/suggestions"))[0] == 404
