"""No burst after a pause (issue 9, item 4), through the real store and the scheduler's own
planning: `store/endpoints` pauses and resumes, `store/claims.claim_due` claims, and
`scheduler/planning.plan_after` with `store/run_writes` finishes each run, exactly as the
scheduler's writer does. One driven clock (a fixed date) stands in for every clock: each slot
is claimed and started at its due time and takes 10 ms, so the test is deterministic and never
waits. The preview the API serves must list the runs that then happen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.scheduler.planning import plan_after
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store.claims import claim_due, lease_token
from cronicorn.store.run_writes import RunOutcome, lock_leased, write_finished
from scheduler.conftest import Rows

T0 = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
TOOK = timedelta(milliseconds=10)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class DrivenScheduler:
    """Claims and finishes runs with the real statements, at instants the test chooses."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], rows: Rows, endpoint_id: str):
        self.conn, self.rows, self.endpoint_id = conn, rows, endpoint_id
        self.claims = 0
        self.ran: list[datetime] = []  # due time (= start) of every run, in order

    async def next_run_at(self) -> datetime:
        return (await self.rows.endpoint_row(self.endpoint_id))["next_run_at"]  # type: ignore[no-any-return]

    async def run_until(self, end: datetime) -> None:
        """Run every slot due before `end`, each at its due time (a scheduler never late)."""
        while (due := await self.next_run_at()) < end:
            self.claims += 1
            lease = lease_token("driven", self.claims)
            (claimed,) = await claim_due(
                self.conn, worker="driven", lease=lease, now=due, horizon=due, limit=5, lease_s=60
            )
            assert claimed.due_at == due
            assert claimed.run_id is not None
            finished = due + TOOK
            async with self.conn.transaction():
                leased = await lock_leased(self.conn, [(self.endpoint_id, lease)])
                planned = plan_after(
                    self.endpoint_id,
                    lease,
                    leased[self.endpoint_id].state,
                    due_at=due,
                    started_at=due,
                    finished_at=finished,
                    succeeded=True,
                    now=finished,
                )
                outcome = RunOutcome(claimed.run_id, "success", due, finished, duration_ms=10)
                await write_finished(self.conn, outcomes=[outcome], updates=[planned.update])
            self.ran.append(due)


async def _preview(engine: AsyncEngine, user: str, endpoint: str, now: datetime) -> list[Any]:
    async with engine.connect() as conn:
        plans = await endpoint_store.preview(conn, user, endpoint, now, 4)
    return [p["at"] for p in plans]


@pytest.mark.parametrize("resume", ["pause ends", "resumed"])
async def test_a_paused_one_second_endpoint_runs_once_at_the_end_then_a_second_later(
    engine: AsyncEngine, rows: Rows, conn: psycopg.AsyncConnection[Any], resume: str
) -> None:
    async with engine.begin() as sa:
        config = {"name": "fast", "url": "http://127.0.0.1:9/x", "baseline_interval_ms": 1000}
        created = await endpoint_store.create(sa, rows.user_id, rows.job_id, config, T0)
    scheduler = DrivenScheduler(conn, rows, created.id)
    await scheduler.run_until(at(2.5))
    assert scheduler.ran == [at(1), at(2)]

    until = at(8.51) if resume == "pause ends" else at(3600)
    async with engine.begin() as sa:
        await endpoint_store.set_paused_until(sa, rows.user_id, created.id, until, at(2.51))
    if resume == "pause ends":
        expected = await _preview(engine, rows.user_id, created.id, at(2.51))
        assert expected == [at(8.51), at(9.51), at(10.51), at(11.51)]
    await scheduler.run_until(at(8.51))
    assert scheduler.ran == [at(1), at(2)], "nothing runs while paused"
    if resume == "resumed":
        async with engine.begin() as sa:
            await endpoint_store.set_paused_until(sa, rows.user_id, created.id, None, at(8.51))
        expected = await _preview(engine, rows.user_id, created.id, at(8.51))
        assert expected == [at(8.51), at(9.51), at(10.51), at(11.51)]

    await scheduler.run_until(at(12))
    assert scheduler.ran[2:] == expected, "the preview listed the runs that happened"
    gaps = [b - a for a, b in zip(scheduler.ran, scheduler.ran[1:], strict=False)]
    assert min(gaps) >= timedelta(seconds=1), scheduler.ran


async def test_a_short_pause_between_slots_adds_no_run(
    engine: AsyncEngine, rows: Rows, conn: psycopg.AsyncConnection[Any]
) -> None:
    """A pause that ends before the next slot misses nothing: no run at its end."""
    async with engine.begin() as sa:
        config = {"name": "slow", "url": "http://127.0.0.1:9/x", "baseline_interval_ms": 10_000}
        created = await endpoint_store.create(sa, rows.user_id, rows.job_id, config, T0)
    scheduler = DrivenScheduler(conn, rows, created.id)
    await scheduler.run_until(at(11))
    async with engine.begin() as sa:
        await endpoint_store.set_paused_until(sa, rows.user_id, created.id, at(15), at(12))
    assert await _preview(engine, rows.user_id, created.id, at(12)) == [
        at(20),
        at(30),
        at(40),
        at(50),
    ]
    await scheduler.run_until(at(41))
    assert scheduler.ran == [at(10), at(20), at(30), at(40)]
