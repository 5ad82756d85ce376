"""Repository rules for jobs and endpoints, against a real database."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import NOW, interval_endpoint
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store
from cronicorn.store.errors import Conflict, Invalid, NotFound
from cronicorn.store.tables import endpoints
from cronicorn.store.wakeups import WAKEUP_CHANNEL


async def _job(engine: AsyncEngine, user_id: str, name: str = "nightly") -> str:
    async with engine.begin() as conn:
        return (await job_store.create(conn, user_id, name=name, description=None, now=NOW)).id


async def test_job_transitions_are_guarded(engine: AsyncEngine, alice: str) -> None:
    job_id = await _job(engine, alice)
    async with engine.begin() as conn:
        _, paused = await job_store.transition(conn, alice, job_id, "paused", NOW)
        assert paused.status == "paused"
        before, again = await job_store.transition(conn, alice, job_id, "paused", NOW)
        assert before == again  # repeating is a no-op
        _, archived = await job_store.transition(conn, alice, job_id, "archived", NOW)
        assert archived.archived_at == NOW
    for target in ("active", "paused"):
        async with engine.begin() as conn:
            with pytest.raises(Conflict):
                await job_store.transition(conn, alice, job_id, target, NOW)  # type: ignore[arg-type]


async def test_jobs_are_scoped_by_user(engine: AsyncEngine, alice: str, bob: str) -> None:
    job_id = await _job(engine, alice)
    async with engine.begin() as conn:
        with pytest.raises(NotFound):
            await job_store.get(conn, bob, job_id)
        with pytest.raises(NotFound):
            await job_store.update_fields(conn, bob, job_id, {"name": "x"}, NOW)
        assert await job_store.list_with_counts(conn, bob) == []
        listed = await job_store.list_with_counts(conn, alice)
    assert [(job.id, count) for job, count in listed] == [(job_id, 0)]


async def test_endpoint_count_includes_archived(engine: AsyncEngine, alice: str) -> None:
    job_id = await _job(engine, alice)
    async with engine.begin() as conn:
        first = await endpoint_store.create(conn, alice, job_id, interval_endpoint(), NOW)
        await endpoint_store.create(conn, alice, job_id, interval_endpoint(name="b"), NOW)
        await endpoint_store.archive(conn, alice, first.id, NOW, job_id=job_id)
        [(_, count)] = await job_store.list_with_counts(conn, alice)
        paused = await job_store.list_with_counts(conn, alice, "paused")
    assert count == 2
    assert paused == []


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"baseline_interval_ms": None}, "baseline_cron"),
        ({"baseline_cron": "*/5 * * * *"}, "baseline_cron"),
        ({"baseline_interval_ms": 500}, "baseline_interval_ms"),
        ({"min_interval_ms": 5000, "max_interval_ms": 2000}, "min_interval_ms"),
        ({"baseline_interval_ms": None, "baseline_cron": "not a cron"}, "baseline_cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ],
)
async def test_create_rejects_bad_schedules(
    engine: AsyncEngine, alice: str, config: dict[str, object], field: str
) -> None:
    job_id = await _job(engine, alice)
    async with engine.begin() as conn:
        with pytest.raises(Invalid) as caught:
            await endpoint_store.create(conn, alice, job_id, interval_endpoint(**config), NOW)
    assert caught.value.field == field


async def test_create_plans_first_run_and_refuses_archived_job(
    engine: AsyncEngine, alice: str
) -> None:
    job_id = await _job(engine, alice)
    async with engine.begin() as conn:
        row = await endpoint_store.create(conn, alice, job_id, interval_endpoint(), NOW)
    assert row.next_run_at > NOW
    assert row.next_run_at <= NOW + timedelta(minutes=1)
    assert row.version == 1
    async with engine.begin() as conn:
        await job_store.transition(conn, alice, job_id, "archived", NOW)
    async with engine.begin() as conn:
        with pytest.raises(Conflict):
            await endpoint_store.create(conn, alice, job_id, interval_endpoint(), NOW)


async def test_patch_switches_baseline_and_clears_fields(engine: AsyncEngine, alice: str) -> None:
    job_id = await _job(engine, alice)
    async with engine.begin() as conn:
        row = await endpoint_store.create(
            conn, alice, job_id, interval_endpoint(max_interval_ms=120_000), NOW
        )
        cron = await endpoint_store.update_config(
            conn, alice, row.id, {"baseline_cron": "0 * * * *"}, NOW, job_id=job_id
        )
        assert (cron.baseline_cron, cron.baseline_interval_ms) == ("0 * * * *", None)
        assert cron.version == 2
        cleared = await endpoint_store.update_config(
            conn, alice, row.id, {"max_interval_ms": None, "timezone": None}, NOW
        )
        assert cleared.max_interval_ms is None
        assert cleared.timezone == "UTC"
        back = await endpoint_store.update_config(
            conn, alice, row.id, {"baseline_interval_ms": 5000}, NOW
        )
        assert (back.baseline_cron, back.baseline_interval_ms) == (None, 5000)
        with pytest.raises(Invalid):
            await endpoint_store.update_config(
                conn, alice, row.id, {"baseline_interval_ms": None}, NOW
            )


async def test_job_id_must_match_endpoint(engine: AsyncEngine, alice: str) -> None:
    job_a, job_b = await _job(engine, alice, "a"), await _job(engine, alice, "b")
    async with engine.begin() as conn:
        row = await endpoint_store.create(conn, alice, job_a, interval_endpoint(), NOW)
        with pytest.raises(NotFound):
            await endpoint_store.get(conn, alice, row.id, job_id=job_b)
        with pytest.raises(NotFound):
            await endpoint_store.delete_endpoint(conn, alice, row.id, job_id=job_b)
        assert (await endpoint_store.get(conn, alice, row.id, job_id=job_a)).id == row.id


async def test_concurrent_patches_serialise(engine: AsyncEngine, alice: str) -> None:
    """Two edits of one endpoint at once: each wins whole, the version counts both."""
    job_id = await _job(engine, alice)
    async with engine.begin() as conn:
        row = await endpoint_store.create(conn, alice, job_id, interval_endpoint(), NOW)

    async def edit(n: int) -> None:
        async with engine.begin() as conn:
            await endpoint_store.update_config(
                conn,
                alice,
                row.id,
                {
                    "name": f"edit-{n}",
                    "baseline_interval_ms": 1000 * (n + 2),
                    "description": str(n),
                },
                NOW,
            )

    await asyncio.gather(*(edit(n) for n in range(6)))
    async with engine.connect() as conn:
        final = (await conn.execute(select(endpoints).where(endpoints.c.id == row.id))).one()
    n = int(final.description)
    assert final.name == f"edit-{n}"
    assert final.baseline_interval_ms == 1000 * (n + 2)
    assert final.version == 7


async def test_hints_validate_against_bounds(engine: AsyncEngine, alice: str) -> None:
    job_id = await _job(engine, alice)
    async with engine.begin() as conn:
        row = await endpoint_store.create(
            conn,
            alice,
            job_id,
            interval_endpoint(min_interval_ms=10_000, max_interval_ms=600_000),
            NOW,
        )
        for bad in (5_000, 700_000):
            with pytest.raises(Invalid):
                await endpoint_store.set_interval_hint(
                    conn,
                    alice,
                    row.id,
                    interval_ms=bad,
                    expires_at=NOW + timedelta(hours=1),
                    reason=None,
                    now=NOW,
                )
        with pytest.raises(Invalid):
            await endpoint_store.set_oneshot_hint(
                conn,
                alice,
                row.id,
                at=NOW,
                expires_at=NOW + timedelta(hours=1),
                reason=None,
                now=NOW,
            )
        hinted = await endpoint_store.set_oneshot_hint(
            conn,
            alice,
            row.id,
            at=NOW + timedelta(seconds=30),
            expires_at=NOW + timedelta(hours=1),
            reason="deploy",
            now=NOW,
        )
        assert hinted.hint_oneshot_at == NOW + timedelta(seconds=30)
        assert hinted.hint_interval_ms is None
        cleared = await endpoint_store.clear_hints(conn, alice, row.id, NOW)
    assert (cleared.hint_oneshot_at, cleared.hint_reason) == (None, None)


async def test_resume_runs_missed_endpoint_once(engine: AsyncEngine, alice: str) -> None:
    """Paused for hours: on resume each endpoint gets ONE catch-up run now, not a storm."""
    job_id = await _job(engine, alice)
    async with engine.begin() as conn:
        row = await endpoint_store.create(conn, alice, job_id, interval_endpoint(), NOW)
        await job_store.transition(conn, alice, job_id, "paused", NOW)
    later = NOW + timedelta(hours=3)
    async with engine.begin() as conn:
        await job_store.transition(conn, alice, job_id, "active", later)
        [resumed] = await endpoint_store.reschedule_job(conn, alice, job_id, later)
    assert (resumed.next_run_at, resumed.next_run_source) == (later, "misfire")
    assert resumed.id == row.id
    async with engine.connect() as conn:
        plans = await endpoint_store.preview(conn, alice, row.id, later, 3)
    assert [p["at"] for p in plans] == [
        later,
        later + timedelta(minutes=1),
        later + timedelta(minutes=2),
    ]


async def test_pause_and_unpause_replan(engine: AsyncEngine, alice: str) -> None:
    job_id = await _job(engine, alice)
    until = NOW + timedelta(hours=1)
    async with engine.begin() as conn:
        row = await endpoint_store.create(conn, alice, job_id, interval_endpoint(), NOW)
        paused = await endpoint_store.set_paused_until(conn, alice, row.id, until, NOW)
        assert (paused.next_run_at, paused.next_run_source) == (until, "paused")
        resumed = await endpoint_store.set_paused_until(conn, alice, row.id, None, NOW)
    assert resumed.next_run_at <= NOW + timedelta(minutes=1)
    assert resumed.next_run_source != "paused"


async def test_earlier_run_wakes_schedulers(
    engine: AsyncEngine, database_url: str, alice: str
) -> None:
    job_id = await _job(engine, alice)
    async with engine.begin() as conn:
        row = await endpoint_store.create(
            conn, alice, job_id, interval_endpoint(baseline_interval_ms=3_600_000), NOW
        )
    listener = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    try:
        await listener.execute(f"LISTEN {WAKEUP_CHANNEL}")
        soon = NOW + timedelta(seconds=5)
        async with engine.begin() as conn:
            hinted = await endpoint_store.set_oneshot_hint(
                conn,
                alice,
                row.id,
                at=soon,
                expires_at=NOW + timedelta(hours=1),
                reason="run now",
                now=NOW,
            )
        assert (hinted.next_run_at, hinted.next_run_source) == (soon, "ai-oneshot")
        gen = listener.notifies(timeout=10, stop_after=1)
        payloads = [n.payload async for n in gen]
    finally:
        await listener.close()
    assert payloads == [soon.isoformat()]
