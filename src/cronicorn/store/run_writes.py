"""Finishing runs in batches: a few statements per batch, not nine per execution.

One transaction per batch of finished runs:

1. `lock_leased` re-reads the schedule columns of the endpoints this worker still leases,
   `FOR UPDATE` (in id order, like every multi-row lock in the store), so hints, pauses and
   edits written while the run was in flight are honoured, and an API write cannot slip in
   between this read and the write below;
2. the caller plans each endpoint with the domain governor;
3. `write_finished` updates the run rows and the endpoints (next run, failure count, grid
   anchor, consumed or expired hints cleared, lease released) in ONE statement fed by arrays.

Endpoints whose lease this worker lost (another worker took it over after it expired) are not
returned by step 1 and not written in step 3: the taker owns them now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cronicorn.domain import ScheduleState

_STATE_COLUMNS = (
    "baseline_cron",
    "baseline_interval_ms",
    "timezone",
    "min_interval_ms",
    "max_interval_ms",
    "hint_interval_ms",
    "hint_interval_expires_at",
    "hint_oneshot_at",
    "hint_oneshot_expires_at",
    "paused_until",
    "failure_count",
    "last_due_at",
    "next_run_at",
)

LOCK_SQL = f"""
SELECT e.id, e.next_run_source, {", ".join("e." + c for c in _STATE_COLUMNS)}
FROM unnest(%(ids)s::text[], %(leases)s::text[]) AS v(id, lease)
JOIN endpoints e ON e.id = v.id AND e.lease_owner = v.lease
WHERE e.id = ANY(%(ids)s::text[])  -- lets the planner use the primary key
ORDER BY e.id
FOR UPDATE OF e
"""

WRITE_SQL = """
WITH finished AS (
    UPDATE runs r
    SET status = v.status, started_at = v.started_at, finished_at = v.finished_at,
        duration_ms = v.duration_ms, status_code = v.status_code,
        response_body = v.body::jsonb, response_text = v.body_text,
        response_size = v.size, response_truncated = v.truncated,
        error_message = v.error
    FROM unnest(%(run_ids)s::text[], %(statuses)s::text[], %(started)s::timestamptz[],
                %(finished)s::timestamptz[], %(durations)s::int[], %(codes)s::int[],
                %(bodies)s::text[], %(texts)s::text[], %(sizes)s::int[],
                %(truncated)s::bool[], %(errors)s::text[])
         AS v(id, status, started_at, finished_at, duration_ms, status_code, body, body_text,
              size, truncated, error)
    WHERE r.id = v.id AND r.status = 'running' AND r.id = ANY(%(run_ids)s::text[])
    RETURNING r.id
)
UPDATE endpoints e
SET next_run_at = v.next_run_at,
    next_run_source = v.source,
    failure_count = v.failures,
    last_due_at = coalesce(v.last_due_at, e.last_due_at),
    last_run_at = coalesce(v.last_run_at, e.last_run_at),
    hint_interval_ms = CASE WHEN v.clear_interval THEN NULL ELSE e.hint_interval_ms END,
    hint_interval_expires_at =
        CASE WHEN v.clear_interval THEN NULL ELSE e.hint_interval_expires_at END,
    hint_oneshot_at = CASE WHEN v.clear_oneshot THEN NULL ELSE e.hint_oneshot_at END,
    hint_oneshot_expires_at =
        CASE WHEN v.clear_oneshot THEN NULL ELSE e.hint_oneshot_expires_at END,
    hint_reason = CASE WHEN (v.clear_interval OR e.hint_interval_ms IS NULL)
                        AND (v.clear_oneshot OR e.hint_oneshot_at IS NULL)
                       THEN NULL ELSE e.hint_reason END,
    hint_source = CASE WHEN (v.clear_interval OR e.hint_interval_ms IS NULL)
                        AND (v.clear_oneshot OR e.hint_oneshot_at IS NULL)
                       THEN NULL ELSE e.hint_source END,
    lease_owner = NULL,
    lease_until = NULL
FROM unnest(%(ids)s::text[], %(leases)s::text[], %(next_run_at)s::timestamptz[],
            %(sources)s::text[],
            %(failures)s::int[], %(last_due_at)s::timestamptz[],
            %(last_run_at)s::timestamptz[], %(clear_interval)s::bool[],
            %(clear_oneshot)s::bool[])
     AS v(id, lease, next_run_at, source, failures, last_due_at, last_run_at,
          clear_interval, clear_oneshot)
WHERE e.id = v.id AND e.lease_owner = v.lease AND e.id = ANY(%(ids)s::text[])
"""


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """The finished state of one run row. `body_json` is JSON text (stored as jsonb)."""

    run_id: str
    status: str  # "success" | "failed"
    started_at: datetime
    finished_at: datetime
    duration_ms: int | None = None
    status_code: int | None = None
    body_json: str | None = None
    body_text: str | None = None
    size: int | None = None
    truncated: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointUpdate:
    """What a finished (or abandoned) run changes on its endpoint; the lease is released."""

    endpoint_id: str
    lease: str
    next_run_at: datetime
    source: str
    failure_count: int
    last_due_at: datetime | None = None
    last_run_at: datetime | None = None
    clear_interval: bool = False
    clear_oneshot: bool = False


@dataclass(frozen=True, slots=True)
class Leased:
    """An endpoint's schedule as re-read under lock, and the label of its stored plan."""

    state: ScheduleState
    next_run_source: str


async def lock_leased(
    conn: AsyncConnection[Any], leases: Sequence[tuple[str, str]]
) -> dict[str, Leased]:
    """Lock and read the schedule of endpoints still held under the given (endpoint id,
    lease) pairs (call inside a transaction; absent ids were taken over by another worker)."""
    if not leases:
        return {}
    params = {"ids": [i for i, _ in leases], "leases": [t for _, t in leases]}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(LOCK_SQL, params)
        rows = await cur.fetchall()
    return {
        row["id"]: Leased(ScheduleState.from_mapping(row), row["next_run_source"]) for row in rows
    }


async def write_finished(
    conn: AsyncConnection[Any],
    *,
    outcomes: Sequence[RunOutcome],
    updates: Sequence[EndpointUpdate],
) -> int:
    """Write finished runs and endpoint plans (releasing their leases) in one statement;
    returns the number of endpoints written."""
    if not outcomes and not updates:
        return 0
    cur = await conn.execute(WRITE_SQL, {**_run_arrays(outcomes), **_updates(updates)})
    return cur.rowcount


def _run_arrays(outcomes: Sequence[RunOutcome]) -> dict[str, list[Any]]:
    return {
        "run_ids": [o.run_id for o in outcomes],
        "statuses": [o.status for o in outcomes],
        "started": [o.started_at for o in outcomes],
        "finished": [o.finished_at for o in outcomes],
        "durations": [o.duration_ms for o in outcomes],
        "codes": [o.status_code for o in outcomes],
        "bodies": [o.body_json for o in outcomes],
        "texts": [o.body_text for o in outcomes],
        "sizes": [o.size for o in outcomes],
        "truncated": [o.truncated for o in outcomes],
        "errors": [o.error for o in outcomes],
    }


def _updates(updates: Sequence[EndpointUpdate]) -> dict[str, list[Any]]:
    return {
        "ids": [u.endpoint_id for u in updates],
        "leases": [u.lease for u in updates],
        "next_run_at": [u.next_run_at for u in updates],
        "sources": [u.source for u in updates],
        "failures": [u.failure_count for u in updates],
        "last_due_at": [u.last_due_at for u in updates],
        "last_run_at": [u.last_run_at for u in updates],
        "clear_interval": [u.clear_interval for u in updates],
        "clear_oneshot": [u.clear_oneshot for u in updates],
    }
