"""Every statement that locks several endpoints and may wait takes the locks in id order.

Two such statements then never wait on each other in a cycle. The scheduler's batch write
locks in id order (`run_writes.LOCK_SQL`); a job pause whose trigger locked in scan order
deadlocked with it in CI. Each case below stores three endpoints of one job so that the scan
order (the physical order) is the reverse of the id order, holds the middle one from another
transaction, starts the statement and lets it block there, then probes the other two with
NOWAIT: the smaller id must already be locked, the larger one not yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain import NO_QUOTAS
from cronicorn.store.claims import RELEASE_UNSTARTED_SQL, RENEW_SQL
from cronicorn.store.endpoints import lock_all_of
from cronicorn.store.quotas import release_deferred
from support import a_session_waits_on_a_lock, until

IDS = ["lock-a", "lock-b", "lock-c"]
USER, JOB, LEASE = "lock-user", "lock-job", "lease-1"
LATER = datetime.now(UTC) + timedelta(days=3)

Statement = Callable[[AsyncEngine], Awaitable[object]]


async def _raw(engine: AsyncEngine, sql: str, params: dict[str, object]) -> None:
    async with engine.begin() as conn:
        await conn.exec_driver_sql(sql, params)


async def _pause_job(engine: AsyncEngine) -> None:
    await _raw(engine, "UPDATE jobs SET status = 'paused' WHERE id = %(id)s", {"id": JOB})


async def _renew(engine: AsyncEngine) -> None:
    await _raw(engine, RENEW_SQL, {"ids": IDS, "leases": [LEASE] * 3, "lease_s": 60})


async def _release_unstarted(engine: AsyncEngine) -> None:
    params = {"ids": IDS, "leases": [LEASE] * 3, "run_ids": ["none"], "worker": "w"}
    await _raw(engine, RELEASE_UNSTARTED_SQL, params)


async def _release_deferred(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await release_deferred(conn, NO_QUOTAS, datetime.now(UTC))


async def _lock_for_import(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await lock_all_of(conn, USER)


def _seed(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (id, email) VALUES (%s, 'lock@x.io')", (USER,))
        conn.execute("INSERT INTO jobs (id, user_id, name) VALUES (%s, %s, 'j')", (JOB, USER))
        for endpoint_id in reversed(IDS):  # physical order c, b, a
            conn.execute(
                """
                INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms,
                                       next_run_at, next_run_source, lease_owner, lease_until)
                VALUES (%s, %s, %s, %s, 'http://127.0.0.1:9/', 60000, %s, 'quota', %s,
                        now() + interval '1 minute')
                """,
                (endpoint_id, JOB, USER, endpoint_id, LATER, LEASE),
            )


def _free(conn: psycopg.Connection, endpoint_id: str) -> bool:
    try:
        with conn.transaction():
            conn.execute("SELECT 1 FROM endpoints WHERE id = %s FOR UPDATE NOWAIT", (endpoint_id,))
    except psycopg.errors.LockNotAvailable:
        return False
    return True


@pytest.mark.parametrize(
    "statement",
    [_pause_job, _renew, _release_unstarted, _release_deferred, _lock_for_import],
    ids=["job-status-trigger", "renew", "release-unstarted", "release-deferred", "import"],
)
async def test_endpoints_are_locked_in_id_order(
    database_url: str, engine: AsyncEngine, statement: Statement
) -> None:
    _seed(database_url)
    with (
        psycopg.connect(database_url) as holder,
        psycopg.connect(database_url, autocommit=True) as probe,
    ):
        holder.execute("SELECT 1 FROM endpoints WHERE id = 'lock-b' FOR UPDATE")
        task = asyncio.create_task(statement(engine))
        try:
            blocked = "blocked on lock-b"
            await until(lambda: a_session_waits_on_a_lock(engine), timeout=10, what=blocked)
            assert not _free(probe, "lock-a"), "the smaller id is locked before lock-b"
            assert _free(probe, "lock-c"), "the larger id waits until lock-b is taken"
        finally:
            holder.rollback()
            await task
    assert task.exception() is None


async def test_release_deferred_still_releases(database_url: str, engine: AsyncEngine) -> None:
    _seed(database_url)
    async with engine.begin() as conn:
        assert await release_deferred(conn, NO_QUOTAS, datetime.now(UTC)) == 3
    with psycopg.connect(database_url) as conn:
        sources = conn.execute("SELECT DISTINCT next_run_source FROM endpoints").fetchall()
    assert sources == [("misfire",)]
