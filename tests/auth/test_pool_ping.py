"""The pool pings a connection only after it sat idle (`store.db.ping_when_idle`), instead of
one round trip on every checkout: a connection the server dropped while it was idle is
replaced before any request sees it; without the ping the request would have failed."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from cronicorn.store.db import make_async_engine


async def _backend_pid(engine: object) -> int:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(database_url: str, pid: int) -> None:
    killer = make_async_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with killer.connect() as conn:
            assert (await conn.execute(text(f"SELECT pg_terminate_backend({pid})"))).scalar()
            await conn.commit()
    finally:
        await killer.dispose()


async def test_an_idle_connection_dropped_by_the_server_is_replaced(database_url: str) -> None:
    engine = make_async_engine(database_url, pool_size=1, max_overflow=0, ping_idle_s=0.0)
    try:
        first = await _backend_pid(engine)
        await _terminate(database_url, first)
        second = await _backend_pid(engine)  # pinged, found dead, replaced: no error
        assert second != first
    finally:
        await engine.dispose()


async def test_a_recently_used_connection_is_not_pinged(database_url: str) -> None:
    """The other side of the trade: within `ping_idle_s` of its last use the connection is
    trusted, so a drop in that instant reaches one statement (which then resets the pool)."""
    engine = make_async_engine(database_url, pool_size=1, max_overflow=0, ping_idle_s=3600.0)
    try:
        first = await _backend_pid(engine)
        await _terminate(database_url, first)
        with pytest.raises(DBAPIError):
            await _backend_pid(engine)
        assert await _backend_pid(engine) != first  # the pool recovered by itself
    finally:
        await engine.dispose()


async def test_a_pinged_connection_is_handed_out_outside_any_transaction(
    database_url: str,
) -> None:
    """The ping leaves no transaction open: the next user may still switch to autocommit
    (as `/api/health` and the gate do)."""
    engine = make_async_engine(database_url, pool_size=1, max_overflow=0, ping_idle_s=0.0)
    try:
        await _backend_pid(engine)
        async with engine.connect() as conn:  # pinged on checkout
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
