"""Run-history retention: by age and by count per endpoint, in small batches.

Each statement deletes at most `limit` rows (default 5,000) so retention never holds long
locks or bloats one transaction; callers loop until a statement deletes less than `limit`.
Rows locked by someone else are skipped (`SKIP LOCKED`), so several schedulers may prune at
once without waiting on each other.

Deleting runs never touches the rollups (`runs_hourly`, `runs_hourly_users`, `runs_daily`,
migration 0010; `runs_jobs_hourly`, `runs_jobs_daily`, `ai_sessions_hourly`, 0012): the
dashboard's statistics keep counting pruned runs. The rollups have a
retention of their own (`delete_rollups_before`), longer than any statistics range.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

DELETE_LIMIT = 5_000

AGE_SQL = """
DELETE FROM runs
WHERE id IN (
    SELECT id FROM runs
    WHERE started_at < %(cutoff)s AND status <> 'running'
    ORDER BY started_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
"""

# For each endpoint, the newest kept run's start is found by an index-only walk of
# `ix_runs_endpoint_id_started_at` (OFFSET keep-1); everything strictly older goes.
COUNT_SQL = """
DELETE FROM runs
WHERE id IN (
    SELECT r.id
    FROM unnest(%(ids)s::text[]) AS ep(id)
    CROSS JOIN LATERAL (
        SELECT started_at FROM runs
        WHERE endpoint_id = ep.id
        ORDER BY started_at DESC
        OFFSET %(offset)s LIMIT 1
    ) AS oldest_kept
    JOIN runs r ON r.endpoint_id = ep.id AND r.started_at < oldest_kept.started_at
    WHERE r.status <> 'running'
    LIMIT %(limit)s
    FOR UPDATE OF r SKIP LOCKED
)
"""


ROLLUP_SQL = """
DELETE FROM {table}
WHERE ctid IN (
    SELECT ctid FROM {table}
    WHERE {column} < %(cutoff)s
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
"""
ROLLUP_TABLES = (
    ("runs_hourly", "hour"),
    ("runs_hourly_users", "hour"),
    ("runs_daily", "day"),
    ("ai_sessions_hourly", "hour"),  # 0012
    ("runs_jobs_hourly", "hour"),
    ("runs_jobs_daily", "day"),
)


async def delete_rollups_before(
    conn: AsyncConnection[Any], cutoff: datetime, *, limit: int = DELETE_LIMIT
) -> int:
    """Delete up to `limit` rollup rows of each table for hours before `cutoff`."""
    deleted = 0
    for table, column in ROLLUP_TABLES:
        sql = ROLLUP_SQL.format(table=table, column=column)
        cur = await conn.execute(sql, {"cutoff": cutoff, "limit": limit})
        deleted += cur.rowcount
    return deleted


async def delete_older_than(
    conn: AsyncConnection[Any], cutoff: datetime, *, limit: int = DELETE_LIMIT
) -> int:
    """Delete up to `limit` finished runs that started before `cutoff`, oldest first."""
    cur = await conn.execute(AGE_SQL, {"cutoff": cutoff, "limit": limit})
    return cur.rowcount


async def trim_per_endpoint(
    conn: AsyncConnection[Any],
    endpoint_ids: Sequence[str],
    keep: int,
    *,
    limit: int = DELETE_LIMIT,
) -> int:
    """Delete up to `limit` runs of `endpoint_ids` beyond each one's `keep` newest."""
    if not endpoint_ids or keep <= 0:
        return 0
    cur = await conn.execute(
        COUNT_SQL, {"ids": list(endpoint_ids), "offset": keep - 1, "limit": limit}
    )
    return cur.rowcount
