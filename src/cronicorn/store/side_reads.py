"""A second connection for reads a request can run beside its own, when one is to spare.

A page whose statements do not depend on each other (the dashboard's runs per job beside its
other numbers) finishes sooner when PostgreSQL runs them at once on two backends. A request
that holds a connection and waits for another could deadlock the pool when every holder
does it, so this never waits: at most `limit` side connections per process, and none while
more than half of the pool is checked out (a busy process serves more requests instead of
faster ones). Without one the caller runs its statements one after another, as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class SideReads:
    def __init__(self, engine: AsyncEngine, limit: int = 2) -> None:
        self._engine = engine
        self._limit = limit
        self._taken = 0

    def _spare(self) -> bool:
        pool = self._engine.pool
        capacity = getattr(pool, "size", lambda: 0)() + getattr(pool, "_max_overflow", 0)
        checked_out = getattr(pool, "checkedout", lambda: capacity)()
        return self._taken < self._limit and checked_out < capacity // 2

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection | None]:
        """An autocommitted read connection, or None when none is to spare."""
        if not self._spare():
            yield None
            return
        self._taken += 1
        try:
            async with self._engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
        finally:
            self._taken -= 1
