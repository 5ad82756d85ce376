"""The scheduler loop in-process: runs on the grid, never early, never twice, wakes on
NOTIFY, honours hints and pauses set mid-run, signs, drains on stop."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

from aiohttp import web
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.dispatch.signing import (
    compute_signature,
    encrypt_signing_key,
    generate_signing_key,
)
from cronicorn.store import signing_keys as key_store
from cronicorn.store.tables import endpoints
from cronicorn.store.wakeups import wake_schedulers
from scheduler.conftest import Rows, Target, running_scheduler, serve_target, utc
from support import until

LISTENING = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND application_name = 'cronicorn-scheduler:listen' AND state = 'idle'"
    " AND query LIKE 'LISTEN %'"
)


async def test_runs_every_endpoint_on_its_grid_never_early_never_twice(
    rows: Rows, target: Target, database_url: str, engine: AsyncEngine
) -> None:
    ids = await rows.endpoints(
        [target.url(f"/ok/{i}") for i in range(20)], first_at=utc(seconds=0.3), spread_s=0.5
    )

    async def three_each() -> bool:
        return await rows.run_count(status="success") >= 20 * 3

    async with running_scheduler(database_url, engine, worker_id="w1"):
        await until(three_each, timeout=20, what="three runs per endpoint")
    runs = await rows.runs()
    assert all(r["status"] != "running" for r in runs), "drained: nothing left running"
    for r in runs:
        assert r["started_at"] >= r["due_at"], "never early"
        assert r["worker"] == "w1"
        assert r["source"] == "baseline-interval"
        assert r["status_code"] == 200
        assert r["response_body"]["ok"] is True
    for endpoint in ids:
        dues = [r["due_at"] for r in runs if r["endpoint_id"] == endpoint]
        gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(dues)}
        assert gaps <= {1.0}, f"on the 1 s grid, no drift: {gaps}"
    assert all(h.due_at is not None and h.run_id is not None for h in target.hits)
    assert len({(h.path, h.due_at) for h in target.hits}) == len(target.hits), "no slot twice"
    assert len(target.hits) == len(runs)
    for endpoint in ids:
        row = await rows.endpoint_row(endpoint)
        assert row["lease_owner"] is None
        assert row["lease_until"] is None


async def test_notify_wakes_an_idle_scheduler_at_once(
    rows: Rows, target: Target, database_url: str, engine: AsyncEngine
) -> None:
    endpoint = await rows.endpoint(target.url("/ok/late"), first_at=utc(hours=1))
    async with running_scheduler(database_url, engine, idle_wake_s=60) as scheduler:

        async def idle_and_listening() -> bool:
            """Only then does the run below show that the NOTIFY woke it: after a fixed pause
            on a busy machine, the first claim or the listener's connect could run it instead."""
            far = scheduler._wake_at is not None and scheduler._wake_at > utc(seconds=30)
            async with engine.connect() as c:
                listening = await c.scalar(text(LISTENING))
            return far and bool(listening) and not scheduler._wake.is_set()

        await until(idle_and_listening, timeout=30, what="the loop idle until its far wake-up")
        async with engine.begin() as conn:
            now = utc()
            await conn.execute(
                update(endpoints).where(endpoints.c.id == endpoint).values(next_run_at=now)
            )
            await wake_schedulers(conn, now)
        await until(lambda: target.count("/ok/late") >= 1, timeout=5, what="run after NOTIFY")


async def test_a_oneshot_runs_once_and_is_cleared(
    rows: Rows, target: Target, database_url: str, engine: AsyncEngine
) -> None:
    now = utc()
    endpoint = await rows.endpoint(
        target.url("/ok/oneshot"),
        first_at=now,
        baseline_interval_ms=3_600_000,
        hint_oneshot_at=now,
        hint_oneshot_expires_at=now + timedelta(minutes=5),
        hint_reason="run now",
        next_run_source="ai-oneshot",
    )
    async with running_scheduler(database_url, engine):
        await until(lambda: target.count("/ok/oneshot") >= 1, timeout=5, what="the one-shot")
        await asyncio.sleep(0.5)
    assert target.count("/ok/oneshot") == 1, "a consumed one-shot causes no extra run"
    row = await rows.endpoint_row(endpoint)
    assert row["hint_oneshot_at"] is None
    assert row["hint_reason"] is None
    assert row["next_run_at"] > utc(minutes=50)
    (run,) = await rows.runs(endpoint)
    assert run["source"] == "ai-oneshot", "the run records what triggered it"


async def test_a_pause_set_during_a_run_is_honoured(
    rows: Rows, target: Target, database_url: str, engine: AsyncEngine
) -> None:
    endpoint = await rows.endpoint(target.url("/hang/1/paused"), first_at=utc())
    pause = utc(hours=2)
    async with running_scheduler(database_url, engine):
        await until(lambda: target.count("/hang/") >= 1, timeout=5, what="the call to start")
        async with engine.begin() as conn:
            await conn.execute(
                update(endpoints).where(endpoints.c.id == endpoint).values(paused_until=pause)
            )

        async def written() -> bool:
            return await rows.run_count(endpoint, status="success") == 1

        await until(written, timeout=10, what="the run to finish")
    row = await rows.endpoint_row(endpoint)
    assert row["next_run_at"] == pause
    assert row["next_run_source"] == "paused"


async def test_requests_are_signed_and_a_broken_key_fails_only_its_owner(
    rows: Rows, database_url: str, engine: AsyncEngine
) -> None:
    raw, _, prefix = generate_signing_key()
    other_user = await rows.user()
    async with engine.begin() as conn:
        for user, secret in ((rows.user_id, "t" * 40), (other_user, "another-secret" * 3)):
            await key_store.create(
                conn, user, encrypted=encrypt_signing_key(raw, secret), prefix=prefix, now=utc()
            )
    seen: list[tuple[str, str]] = []

    async def signed(request: web.Request) -> web.StreamResponse:
        headers = request.headers
        seen.append((headers["X-Cronicorn-Signature"], headers["X-Cronicorn-Timestamp"]))
        return web.json_response({})

    async with serve_target({"/signed": signed}) as target:
        await rows.endpoint(target.url("/signed"), first_at=utc())
        rows.user_id, owner = other_user, rows.user_id
        rows.job_id = await rows.job()
        broken = await rows.endpoint(target.url("/ok/unsigned"), first_at=utc())
        rows.user_id = owner

        async def both_ran() -> bool:
            return bool(seen) and await rows.run_count(broken, status="failed") >= 1

        async with running_scheduler(database_url, engine):
            await until(both_ran, timeout=5, what="a signed call and a refused one")
    signature, stamp = seen[0]
    assert signature == f"sha256={compute_signature(raw, int(stamp), b'')}"
    run = (await rows.runs(broken))[0]
    assert "signing keys unavailable" in run["error_message"]
    assert target.count("/ok/unsigned") == 0, "never sent unsigned"


async def test_stop_drains_running_calls_and_gives_back_waiting_ones(
    rows: Rows, target: Target, database_url: str, engine: AsyncEngine
) -> None:
    slow = await rows.endpoint(target.url("/hang/1/slow"), first_at=utc())
    later = await rows.endpoint(target.url("/ok/later"), first_at=utc(seconds=2))
    async with running_scheduler(database_url, engine, claim_ahead_s=3.0):
        await until(lambda: target.count("/hang/") >= 1, timeout=5, what="the slow call")
        assert (await rows.endpoint_row(later))["lease_owner"] is not None, "claimed ahead"
    (run,) = [r for r in await rows.runs(slow) if r["status"] != "skipped"]
    assert run["status"] == "success", "the running call finished and was written"
    assert await rows.run_count(later) == 0, "the waiting slot was given back"
    row = await rows.endpoint_row(later)
    assert row["lease_owner"] is None
    assert row["next_run_at"] < utc(seconds=3)
