"""Fixed-window request counters in PostgreSQL, so every API process shares one budget.

One statement per request: an upsert that returns the window's count including this
request. Old windows are deleted now and then by whichever process gets there first.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.store.tables import rate_limits

_HIT = text(
    "INSERT INTO rate_limits (bucket, window_start, count) VALUES (:bucket, :window_start, 1) "
    "ON CONFLICT (bucket, window_start) DO UPDATE SET count = rate_limits.count + 1 "
    "RETURNING count"
)


def window_start(now: datetime) -> datetime:
    """Windows are calendar minutes (UTC), the same in every process."""
    return now.replace(second=0, microsecond=0)


async def hit(conn: AsyncConnection, bucket: str, window_start: datetime) -> int:
    """Count one request in `bucket`'s window; the count including it."""
    result = await conn.execute(_HIT, {"bucket": bucket, "window_start": window_start})
    return int(result.scalar_one())


async def prune(conn: AsyncConnection, before: datetime) -> int:
    """Delete windows that started before `before`; how many rows went."""
    result = await conn.execute(delete(rate_limits).where(rate_limits.c.window_start < before))
    return int(result.rowcount or 0)
