"""Fixed-window request counters in PostgreSQL, so every API process shares one budget.

One statement per request (`hit`), or per batch of requests a process reserves (`reserve`,
see `api.ratelimit.LocalBudget`): an upsert that returns the window's count including them.
Old windows are deleted now and then by whichever process gets there first.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.store.read_pool import ReadPool, compiled
from cronicorn.store.tables import rate_limits

_HIT = text(
    "INSERT INTO rate_limits (bucket, window_start, count) VALUES (:bucket, :window_start, 1) "
    "ON CONFLICT (bucket, window_start) DO UPDATE SET count = rate_limits.count + 1 "
    "RETURNING count"
)


_RESERVE = text(
    """
    WITH hit AS (
        INSERT INTO rate_limits AS r (bucket, window_start, count)
        VALUES (:bucket, :window_start, :want)
        ON CONFLICT (bucket, window_start) DO UPDATE SET count = r.count + :want
        RETURNING r.count
    )
    SELECT count,
           CASE WHEN :async_commit THEN set_config('synchronous_commit', 'off', true) END
    FROM hit
    """
)


def window_start(now: datetime) -> datetime:
    """Windows are calendar minutes (UTC), the same in every process."""
    return now.replace(second=0, microsecond=0)


async def hit(conn: AsyncConnection, bucket: str, window_start: datetime) -> int:
    """Count one request in `bucket`'s window; the count including it."""
    result = await conn.execute(_HIT, {"bucket": bucket, "window_start": window_start})
    return int(result.scalar_one())


async def reserve(
    conn: AsyncConnection, bucket: str, window_start: datetime, want: int, *, async_commit: bool
) -> int:
    """Add `want` to `bucket`'s window (a process's reservation of that many requests);
    the count including them. `async_commit` only when the statement is its own transaction
    (see `store.auth_gate`)."""
    params = {
        "bucket": bucket,
        "window_start": window_start,
        "want": want,
        "async_commit": async_commit,
    }
    return int((await conn.execute(_RESERVE, params)).scalar_one())


_RESERVE_AUTOCOMMITTED = compiled(_RESERVE)


async def reserve_autocommitted(
    pool: ReadPool, bucket: str, window_start: datetime, want: int
) -> int:
    """`reserve` on the API's pool of autocommitted connections (the statement is its own
    transaction, so it commits asynchronously): what the hot lists' fast path uses when the
    process's reservation runs out, instead of handing the request to the framework."""
    params = {"bucket": bucket, "window_start": window_start, "want": want, "async_commit": True}
    rows = await pool.fetch(_RESERVE_AUTOCOMMITTED, params)
    return int(rows[0][0])


async def prune(conn: AsyncConnection, before: datetime) -> int:
    """Delete windows that started before `before`; how many rows went."""
    result = await conn.execute(delete(rate_limits).where(rate_limits.c.window_start < before))
    return int(result.rowcount or 0)
