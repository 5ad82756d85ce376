"""The hot list route's short cuts (issue 17) change nothing a client or operator sees:
`iso_ms` writes what `isoformat` would, and the read pool never reuses a
connection it cannot trust (a dead one is replaced; one left mid-query is closed) and fails
as the engine does (SQLAlchemy's `OperationalError`, which the error table makes a 503)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import OperationalError

from cronicorn.schemas.common import iso_ms
from cronicorn.store.db import PING_IDLE_S
from cronicorn.store.read_pool import ReadPool, compiled
from support import until


@settings(max_examples=150, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-9, minutes=-30))])
        | st.timezones(),
    )
)
def test_iso_ms_is_isoformats_in_utc_to_the_millisecond(moment: datetime) -> None:
    """`iso_ms` formats the fields itself (cheaper): the same text as `isoformat`."""
    expected = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    assert iso_ms(moment) == expected.removesuffix("+00:00") + "Z"


BACKEND = compiled(select(func.pg_backend_pid()))
SLEEP = compiled(select(func.pg_sleep(30)))
ECHO = compiled(select(bindparam("x")))


async def _pid(pool: ReadPool) -> int:
    """The connection's server process (and a check that parameters bind by name)."""
    assert await pool.fetch(ECHO, {"x": 7}) == [(7,)]
    rows = await pool.fetch(BACKEND, {})
    return int(rows[0][0])


def _kill(database_url: str, pid: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_dead_connection_fails_like_the_engines_then_is_replaced(database_url: str) -> None:
    pool = ReadPool(database_url, 2)
    try:
        first = await _pid(pool)
        assert await _pid(pool) == first, "an idle connection is reused"
        _kill(database_url, first)
        with pytest.raises(OperationalError) as caught:
            await pool.fetch(BACKEND, {})
        assert caught.value.connection_invalidated
        assert await _pid(pool) != first, "the broken connection was not put back"
    finally:
        await pool.close()


async def test_a_connection_idle_too_long_is_pinged_and_replaced_if_dead(
    database_url: str,
) -> None:
    clock = Clock()
    pool = ReadPool(database_url, 2, monotonic=clock)
    try:
        first = await _pid(pool)
        _kill(database_url, first)
        clock.now += PING_IDLE_S + 0.5
        assert await _pid(pool) != first, "no error: the ping found it dead"
    finally:
        await pool.close()


async def test_a_cancelled_read_leaves_nothing_running_and_the_pool_usable(
    database_url: str,
) -> None:
    """A client that hangs up mid-query cancels its request: the statement must not keep
    running on the server, nor the pool's only connection stay busy with it."""
    pool = ReadPool(database_url, 1)
    sleeping = (
        "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep%'"
        " AND pid <> pg_backend_pid()"
    )
    try:
        await _pid(pool)
        task = asyncio.create_task(pool.fetch(SLEEP, {}))
        with psycopg.connect(database_url, autocommit=True) as admin:

            def running() -> bool:
                return admin.execute(sleeping).fetchone() is not None

            await until(running, timeout=30, what="the query to start")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await until(lambda: not running(), timeout=10, what="the query to end")
        assert await pool.fetch(ECHO, {"x": 1}) == [(1,)]
    finally:
        await pool.close()
