"""Lost leases without an index on the lease columns (migration 0013): the take-over finds
them through runs in flight, the front of the due index and the walk over every endpoint in
primary-key order, and a lease held with no run in flight (the worker died after claiming a
slot that already had a run, or after a take-over) is still taken over."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.claims import claim_due, lease_token, sweep_leases, take_over
from cronicorn.store.tables import endpoints, runs
from scheduler.conftest import Rows, running_scheduler, utc
from support import until

DEAD = lease_token("dead", 1)  # no liveness key: taken over only once expired


async def _lease_without_run(rows: Rows, conn: psycopg.AsyncConnection[Any], **plan: Any) -> str:
    """An endpoint claimed a minute ago whose dead worker's lease expired while no run of it
    is in flight, then (with `plan`) moved: e.g. a `next_run_at` a day ahead, or archived."""
    endpoint = await rows.endpoint("http://127.0.0.1:9/x", first_at=utc(seconds=-60))
    now = utc()
    (claim,) = await claim_due(
        conn, worker="dead", lease=DEAD, now=now, horizon=now, limit=1, lease_s=30
    )
    async with rows.engine.begin() as c:
        await c.execute(update(runs).where(runs.c.id == claim.run_id).values(status="success"))
        values = {"lease_until": utc(seconds=-1), **plan}
        await c.execute(update(endpoints).where(endpoints.c.id == endpoint).values(**values))
    return endpoint


async def _take(conn: psycopg.AsyncConnection[Any], **kw: Any) -> list[tuple[str, str | None]]:
    kw.setdefault("lease", "t#1")
    lost = await take_over(conn, now=utc(), lease_s=30, dead_owners=False, **kw)
    return [(x.endpoint_id, x.run_id) for x in lost]


async def test_a_due_lease_with_no_run_in_flight_is_taken_over(
    rows: Rows, conn: psycopg.AsyncConnection[Any]
) -> None:
    endpoint = await _lease_without_run(rows, conn)
    assert await _take(conn) == [(endpoint, None)], "found at the front of the due index"
    assert (await rows.endpoint_row(endpoint))["lease_owner"] == "t#1"
    assert await _take(conn) == [], "the taker's lease is alive"


async def test_a_lease_no_index_finds_is_taken_over_through_the_walk(
    rows: Rows, conn: psycopg.AsyncConnection[Any]
) -> None:
    ahead = await _lease_without_run(rows, conn, next_run_at=utc(days=1))
    archived = await _lease_without_run(rows, conn, archived_at=utc())
    live = await rows.endpoint("http://127.0.0.1:9/live", first_at=utc(days=1))
    assert await _take(conn) == [], "neither in flight nor due"
    after, swept = await sweep_leases(conn, after="", chunk=10)
    assert (after, sorted(swept)) == ("", sorted([ahead, archived])), "leased ones only"
    assert live not in swept
    assert sorted(await _take(conn, swept=swept)) == sorted([(ahead, None), (archived, None)])


async def test_the_walk_covers_every_endpoint_in_chunks_then_starts_over(
    rows: Rows, conn: psycopg.AsyncConnection[Any]
) -> None:
    ids = await rows.endpoints([f"http://127.0.0.1:9/{i}" for i in range(5)])
    async with rows.engine.begin() as c:
        await c.execute(update(endpoints).values(lease_owner=DEAD, lease_until=utc(seconds=30)))
    walked: list[str] = []
    starts = [""]
    for _ in range(3):
        after, swept = await sweep_leases(conn, after=starts[-1], chunk=2)
        walked += swept
        starts.append(after)
    assert sorted(walked) == sorted(ids)
    assert starts[1:] == [sorted(ids)[1], sorted(ids)[3], ""], "the last chunk starts over"


async def test_the_scheduler_frees_a_lease_it_can_only_find_by_walking(
    rows: Rows, conn: psycopg.AsyncConnection[Any], database_url: str, engine: AsyncEngine
) -> None:
    later = utc(days=1)
    endpoint = await _lease_without_run(rows, conn, next_run_at=later)
    await rows.endpoints([f"http://127.0.0.1:9/{i}" for i in range(6)], first_at=later)

    async def freed() -> bool:
        return (await rows.endpoint_row(endpoint))["lease_owner"] is None

    async with running_scheduler(
        database_url, engine, takeover_every_s=0.05, sweep_chunk=2, lease_s=30
    ):
        await until(freed, timeout=15, what="the lost lease released")
    row = await rows.endpoint_row(endpoint)
    assert (row["next_run_at"], row["lease_until"]) == (later, None), "its plan kept"
    assert await rows.run_count(endpoint) == 1, "nothing ran: the slot is a day ahead"


async def test_a_lease_of_a_live_worker_is_not_taken(
    rows: Rows, conn: psycopg.AsyncConnection[Any]
) -> None:
    endpoint = await _lease_without_run(rows, conn)
    async with rows.engine.begin() as c:
        await c.execute(
            update(endpoints)
            .where(endpoints.c.id == endpoint)
            .values(lease_until=utc() + timedelta(seconds=30))
        )
    _, swept = await sweep_leases(conn, after="", chunk=10)
    assert swept == [endpoint]
    assert await _take(conn, swept=swept) == [], "found, but not expired"


async def test_a_scheduler_does_not_look_at_its_own_runs_in_flight(
    rows: Rows, conn: psycopg.AsyncConnection[Any]
) -> None:
    """Its own leases are its to renew: only peers take them over (cheaper: one scheduler's
    take-over then reads no endpoint for its own calls)."""
    endpoint = await rows.endpoint("http://127.0.0.1:9/x", first_at=utc(seconds=-1))
    now = utc()
    (claim,) = await claim_due(
        conn, worker="me", lease=lease_token("me", 1), now=now, horizon=now, limit=1, lease_s=30
    )
    async with rows.engine.begin() as c:
        await c.execute(update(endpoints).values(lease_until=utc(seconds=-1)))
    assert await _take(conn, lease=lease_token("me", 2)) == []
    assert await _take(conn, lease=lease_token("peer", 1)) == [(endpoint, claim.run_id)]
