"""Runs of `allow` endpoints that go on after their endpoint's next slot was planned.

An `allow` endpoint is claimed like any other (endpoint lease, `running` run row). When the
call starts, the scheduler's batch write plans the next slot at once, releases the endpoint
lease and hands the run a lease of its own (`detach`, inside the batch transaction, so
`endpoints.running` and the run's lease change together). Claims skip an `allow` endpoint
while `running` has reached its cap, so at most `max_concurrent` runs are in flight and a
slot still gets one run at most (the unique `(endpoint_id, due_at)` of runs).

A detached run's lease is heartbeated (`renew`), and a peer takes it over when its owner's
liveness lock is free or it expired (`take_over`): the run is closed as "worker lost", the
endpoint's `running` goes down and its failure streak up (with its run events, as a
lost worker's ordinary run). The run's own write (`finish`)
only touches a run still `running` under the same lease, so a late write after a take-over
changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from cronicorn.store.claims import LIVENESS_CLASS, WORKER_LOST
from cronicorn.store.json_rows import json_rows
from cronicorn.store.outbox import enqueue_facts
from cronicorn.store.run_writes import RunOutcome, run_row

DETACH_SQL = """
UPDATE runs r
SET lease_owner = v.lease, lease_until = now() + make_interval(secs => %(lease_s)s)
FROM jsonb_to_recordset(%(rows)s::jsonb) AS v(id text, lease text)
WHERE r.id = v.id AND r.status = 'running'
"""

# The failure streak follows the runs in the order they finished (a success ends it), so
# each run's streak before and after it (`before`, `after`) is what an ordinary run's write
# would have seen; the statement returns them as the run events' facts (`store.outbox`).
FINISH_SQL = """
WITH vr AS (
    SELECT * FROM jsonb_to_recordset(%(runs)s::jsonb) AS v(
        id text, lease text, status text, started_at timestamptz, finished_at timestamptz,
        duration_ms int, status_code int, body jsonb, body_text text, size int,
        truncated bool, error text, rules_fired jsonb, attempts jsonb)
), finished AS (
    UPDATE runs r
    SET status = v.status, started_at = v.started_at, finished_at = v.finished_at,
        duration_ms = v.duration_ms, status_code = v.status_code,
        response_body = v.body, response_text = v.body_text,
        response_size = v.size, response_truncated = coalesce(v.truncated, false),
        error_message = v.error, rules_fired = v.rules_fired, attempts = v.attempts,
        lease_owner = NULL, lease_until = NULL
    FROM vr v
    WHERE r.id = v.id AND r.status = 'running' AND r.lease_owner = v.lease
      AND r.id = ANY(ARRAY(SELECT id FROM vr))
    RETURNING r.id, r.endpoint_id, r.status, r.started_at, r.finished_at, r.duration_ms,
              r.status_code, r.error_message
), ordered AS (
    SELECT f.*, e.failure_count AS base,
           count(*) FILTER (WHERE f.status = 'success') OVER (
               PARTITION BY f.endpoint_id ORDER BY f.finished_at, f.id
               ROWS UNBOUNDED PRECEDING) AS oks
    FROM finished f
    JOIN endpoints e ON e.id = f.endpoint_id
    WHERE e.id = ANY(ARRAY(SELECT endpoint_id FROM finished))
), streaks AS (
    SELECT o.*,
           CASE WHEN o.status = 'success' THEN 0
                ELSE count(*) OVER (
                         PARTITION BY o.endpoint_id, o.oks ORDER BY o.finished_at, o.id
                         ROWS UNBOUNDED PRECEDING)
                     + CASE WHEN o.oks = 0 THEN o.base ELSE -1 END
           END AS after
    FROM ordered o
), facts AS (
    SELECT s.*, lag(s.after, 1, s.base) OVER (
               PARTITION BY s.endpoint_id ORDER BY s.finished_at, s.id) AS before
    FROM streaks s
), per AS (
    SELECT endpoint_id, count(*) AS n,
           (array_agg(after ORDER BY finished_at DESC, id DESC))[1] AS streak,
           max(started_at) AS last_run
    FROM facts GROUP BY endpoint_id
), counted AS (
    UPDATE endpoints e
    SET running = greatest(e.running - p.n, 0), failure_count = p.streak,
        last_run_at = greatest(e.last_run_at, p.last_run)
    FROM per p
    WHERE e.id = p.endpoint_id
)
SELECT coalesce(jsonb_agg(jsonb_build_object(
           'endpoint_id', endpoint_id, 'run_id', id, 'status', status, 'before', before,
           'after', after, 'duration_ms', duration_ms, 'status_code', status_code,
           'error', error_message, 'finished_at', finished_at)
       ORDER BY endpoint_id, finished_at, id), '[]'::jsonb)
FROM facts
"""

RENEW_SQL = """
WITH mine AS (
    SELECT r.id FROM runs r
    WHERE r.id = ANY(%(ids)s::text[])
    ORDER BY r.id
    FOR UPDATE OF r SKIP LOCKED  -- a run being written right now needs no heartbeat
)
UPDATE runs r
SET lease_until = now() + make_interval(secs => %(lease_s)s)
FROM unnest(%(ids)s::text[], %(leases)s::text[]) AS v(id, lease)
WHERE r.id = v.id AND r.lease_owner = v.lease AND r.status = 'running'
  AND r.id = ANY(ARRAY(SELECT id FROM mine))
"""

# Like `claims.TAKE_OVER_SQL`, for run leases: never waits (SKIP LOCKED on the endpoints
# first, then on the runs), and re-checks owner and expiry on the newest row versions.
TAKE_OVER_SQL = """
WITH live AS (
    SELECT l.objid::bigint AS key
    FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.classid = %(liveness_class)s::bigint::oid
      AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
), candidates AS (
    SELECT r.id, r.endpoint_id, r.lease_owner, o.gone
    FROM runs r,
         LATERAL (SELECT substring(r.lease_owner FROM '@([0-9]{1,10})$')::bigint AS key) k,
         LATERAL (
             SELECT %(dead_owners)s AND k.key IS NOT NULL AND k.key NOT IN (SELECT key FROM live)
                 AS gone
         ) o
    WHERE r.lease_until IS NOT NULL AND r.status = 'running'
      AND (r.lease_until < now() OR o.gone)
    ORDER BY r.lease_until
    LIMIT %(limit)s
), eps AS (
    SELECT e.id, e.failure_count FROM endpoints e  -- locked: the newest streak
    WHERE e.id = ANY(ARRAY(SELECT endpoint_id FROM candidates))
    ORDER BY e.id
    FOR UPDATE OF e SKIP LOCKED
), lost AS (
    SELECT r.id FROM runs r
    JOIN candidates c ON c.id = r.id AND c.lease_owner = r.lease_owner
    WHERE r.id = ANY(ARRAY(SELECT id FROM candidates)) AND r.status = 'running'
      AND r.endpoint_id = ANY(ARRAY(SELECT id FROM eps))
      AND (c.gone OR r.lease_until < now())
    FOR UPDATE OF r SKIP LOCKED
), closed AS (
    UPDATE runs r
    SET status = 'failed', finished_at = %(now)s, error_message = %(error)s,
        lease_owner = NULL, lease_until = NULL
    WHERE r.id = ANY(ARRAY(SELECT id FROM lost))
    RETURNING r.id, r.endpoint_id
), per AS (
    SELECT endpoint_id, count(*) AS n FROM closed GROUP BY endpoint_id
), counted AS (
    UPDATE endpoints e
    SET running = greatest(e.running - p.n, 0), failure_count = e.failure_count + p.n
    FROM per p
    WHERE e.id = p.endpoint_id
)
SELECT c.id, c.endpoint_id,
       p.failure_count + row_number() OVER (PARTITION BY c.endpoint_id ORDER BY c.id) AS after
FROM closed c
JOIN eps p ON p.id = c.endpoint_id
"""


async def detach(
    conn: AsyncConnection[Any], runs: Sequence[tuple[str, str]], *, lease_s: float
) -> None:
    """Give (run id, lease) runs their own lease; call in the batch transaction that plans
    their endpoints' next slots and adds them to `endpoints.running`."""
    if runs:
        rows = [{"id": i, "lease": lease} for i, lease in runs]
        await conn.execute(DETACH_SQL, {"rows": json_rows(rows), "lease_s": lease_s})


async def finish(
    conn: AsyncConnection[Any], runs: Sequence[tuple[str, RunOutcome]]
) -> list[dict[str, Any]]:
    """Write detached runs that ended, given with their leases: the run rows, and on their
    endpoints `running`, the failure streak and `last_run_at` (never the next slot: it was
    planned when the run started). Call with the endpoints locked (`lock_leased`), after the
    batch's plans are written. Returns the run events' facts of the runs it wrote (a run
    already closed by a take-over is not written, so it has none)."""
    if not runs:
        return []
    rows = [{**run_row(o), "lease": lease} for lease, o in runs]
    cur = await conn.execute(FINISH_SQL, {"runs": json_rows(rows)})
    found = await cur.fetchone()
    return list(found[0]) if found is not None else []


async def renew(
    conn: AsyncConnection[Any], runs: Sequence[tuple[str, str]], *, lease_s: float
) -> None:
    """Heartbeat the (run id, lease) leases of detached runs still going."""
    if runs:
        await conn.execute(
            RENEW_SQL,
            {"ids": [i for i, _ in runs], "leases": [t for _, t in runs], "lease_s": lease_s},
        )


async def take_over(
    conn: AsyncConnection[Any], *, now: datetime, dead_owners: bool, limit: int = 500
) -> list[str]:
    """Close detached runs whose worker is gone ("worker lost"), each a failure of its
    endpoint's streak with its run events, in one transaction; returns their ids."""
    params = {
        "now": now,
        "limit": limit,
        "error": WORKER_LOST,
        "dead_owners": dead_owners,
        "liveness_class": LIVENESS_CLASS,
    }
    async with conn.transaction():
        cur = await conn.execute(TAKE_OVER_SQL, params)
        closed = await cur.fetchall()
        facts = [
            {
                "endpoint_id": endpoint,
                "run_id": run_id,
                "status": "failed",
                "before": after - 1,
                "after": after,
                "error": WORKER_LOST,
                "finished_at": now.isoformat(),
            }
            for run_id, endpoint, after in closed
        ]
        await enqueue_facts(conn, facts, now)
    return [run_id for run_id, _, _ in closed]
