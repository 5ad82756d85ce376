"""How late scheduled runs started (started_at - due_at), bucketed in UTC like the other
dashboard series (`store.stats`). Manual runs have no slot (due_at NULL) and are left out.

Read from the hourly rollups like the other dashboard statistics (`store/stats.py`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.store import stats
from cronicorn.store.stats import LatenessPoint

__all__ = ["LatenessPoint", "lateness_series"]


async def lateness_series(
    conn: AsyncConnection,
    user_id: str,
    start: datetime,
    end: datetime,
    size: timedelta,
    *,
    job_id: str | None = None,
) -> list[LatenessPoint]:
    """Per bucket: scheduled runs (skipped slots left out), and their average and worst
    lateness in ms (early starts count as 0), from the hourly rollups (`stats.lateness`)."""
    rows = await stats.lateness(conn, user_id, start, end, size, job_id=job_id)
    return [LatenessPoint(at, n, avg, worst) for at, n, avg, worst in rows]
