"""Keeps run history bounded, continuously, in small batches (design §2: a 1-second endpoint
must not fill the disk).

Every pass deletes runs older than `RUN_RETENTION_DAYS`, then trims the endpoints this
scheduler wrote runs for since the last pass down to their `RUN_RETENTION_PER_ENDPOINT`
newest runs (an endpoint whose history grows has run recently, so it was written by some
scheduler, which trims it). Each statement deletes at most 5,000 rows.

The hourly rollups the dashboard counts runs from outlive the runs: they go after
`ROLLUP_RETENTION_DAYS` (twice the longest statistics range, 400 days, so a range and the
one before it that its trend compares with are whole), or `RUN_RETENTION_DAYS` if longer.
Pruned runs therefore still count in the statistics; the run history lists what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from cronicorn.logs import get_logger
from cronicorn.scheduler import metrics
from cronicorn.scheduler.clock import Clock
from cronicorn.scheduler.connection import ReconnectingConnection
from cronicorn.store.retention import (
    DELETE_LIMIT,
    delete_older_than,
    delete_rollups_before,
    trim_per_endpoint,
)

log = get_logger("cronicorn.scheduler")

TRIM_CHUNK = 200  # endpoints per trimming statement
ROLLUP_RETENTION_DAYS = 800


@dataclass(frozen=True)
class RetentionPolicy:
    days: float = 30
    per_endpoint: int = 1000
    every_s: float = 60.0
    delete_limit: int = DELETE_LIMIT

    @property
    def enabled(self) -> bool:
        return self.days > 0 or self.per_endpoint > 0


async def prune_once(
    conn: psycopg.AsyncConnection[object],
    policy: RetentionPolicy,
    clock: Clock,
    endpoint_ids: list[str],
) -> int:
    """One full pass; returns the number of runs deleted."""
    deleted = 0
    if policy.days > 0:
        cutoff = clock() - timedelta(days=policy.days)
        while True:
            count = await delete_older_than(conn, cutoff, limit=policy.delete_limit)
            metrics.RETENTION_DELETED.labels("age").inc(count)
            deleted += count
            if count < policy.delete_limit:
                break
            await asyncio.sleep(0)
    cutoff = clock() - timedelta(days=max(policy.days, ROLLUP_RETENTION_DAYS))
    while True:
        count = await delete_rollups_before(conn, cutoff, limit=policy.delete_limit)
        if count < policy.delete_limit:
            break
        await asyncio.sleep(0)
    if policy.per_endpoint > 0:
        for start in range(0, len(endpoint_ids), TRIM_CHUNK):
            chunk = endpoint_ids[start : start + TRIM_CHUNK]
            while True:
                count = await trim_per_endpoint(
                    conn, chunk, policy.per_endpoint, limit=policy.delete_limit
                )
                metrics.RETENTION_DELETED.labels("count").inc(count)
                deleted += count
                if count < policy.delete_limit:
                    break
            await asyncio.sleep(0)
    return deleted


async def run_retention(
    db: ReconnectingConnection,
    policy: RetentionPolicy,
    clock: Clock,
    take_touched: Callable[[], set[str]],
    stop: asyncio.Event,
) -> None:
    """Prune every `policy.every_s` until `stop`; database errors wait for the next pass."""
    if not policy.enabled:
        return
    pending: set[str] = set()
    while not stop.is_set():
        pending |= take_touched()
        try:
            conn = await db.get()
            deleted = await prune_once(conn, policy, clock, sorted(pending))
            pending.clear()
            if deleted:
                log.info("runs_pruned", deleted=deleted)
        except (psycopg.Error, OSError) as exc:
            metrics.DB_ERRORS.labels("retention").inc()
            await db.discard()
            log.warning("retention_failed", error=str(exc).strip()[:200])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), policy.every_s)
