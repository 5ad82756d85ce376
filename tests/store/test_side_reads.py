"""A request's second connection is taken only when spare, and never waited for."""

from __future__ import annotations

from sqlalchemy import text

from cronicorn.store.db import make_async_engine
from cronicorn.store.side_reads import SideReads


async def test_side_connections_are_taken_only_when_spare(database_url: str) -> None:
    engine = make_async_engine(database_url, pool_size=4, max_overflow=0)
    side = SideReads(engine, limit=1)
    try:
        async with side.connection() as first:
            assert first is not None
            assert first.sync_connection is not None
            options = first.sync_connection.get_execution_options()
            assert options["isolation_level"] == "AUTOCOMMIT"
            assert await first.scalar(text("SELECT 1")) == 1
            async with side.connection() as second:
                assert second is None  # the limit
        async with engine.connect(), engine.connect(), side.connection() as busy:
            assert busy is None  # half the pool is out: none spare
        async with engine.connect(), side.connection() as spare:
            assert spare is not None
    finally:
        await engine.dispose()


async def test_a_one_connection_pool_never_lends_its_connection(database_url: str) -> None:
    engine = make_async_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with SideReads(engine).connection() as side:
            assert side is None  # the request's own connection would wait on itself
    finally:
        await engine.dispose()
