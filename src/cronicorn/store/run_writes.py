"""Finishing runs in batches: a few statements per batch, not nine per execution.

One transaction per batch of finished runs:

1. `lock_leased` re-reads the schedule columns of the endpoints this worker still leases,
   `FOR UPDATE` (in id order, like every multi-row lock in the store), so hints, pauses and
   edits written while the run was in flight are honoured, and an API write cannot slip in
   between this read and the write below;
2. the caller plans each endpoint with the domain governor;
3. `write_finished` updates the run rows and the endpoints (next run, failure count, grid
   anchor, consumed or expired hints cleared, lease released) in ONE statement.

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
from cronicorn.domain.ids import new_id
from cronicorn.store.json_rows import json_rows
from cronicorn.store.wakeups import RUNS_FINISHED_SQL

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

# `min_interval_ms` is raised to the quota floor (QUOTA_MIN_INTERVAL_MS, 0 when off) here, so
# endpoints created before the quota was set are held to it too.
_LOCK_COLUMNS = ", ".join(
    "nullif(greatest(e.min_interval_ms, %(min_floor)s), 0) AS min_interval_ms"
    if c == "min_interval_ms"
    else "e." + c
    for c in _STATE_COLUMNS
)

# A pair with lease NULL locks the endpoint whoever leases it: a detached run of an `allow`
# endpoint finishing (`store.detached`). Callers compare `lease_owner` for the others.
LOCK_SQL = f"""
WITH v AS (SELECT * FROM jsonb_to_recordset(%(leases)s::jsonb) AS v(id text, lease text)),
g AS (SELECT id, array_agg(lease) AS leases, bool_or(lease IS NULL) AS any FROM v GROUP BY id)
SELECT e.id, e.lease_owner, e.overlap, e.next_run_source, e.rules::text AS rules,
       e.hint_source, e.hint_reason, {_LOCK_COLUMNS}
FROM endpoints e
JOIN g ON g.id = e.id
WHERE e.id = ANY(ARRAY(SELECT id FROM v))  -- lets the planner use the primary key
  AND (g.any OR e.lease_owner = ANY(g.leases))
ORDER BY e.id
FOR UPDATE OF e
"""

# Rows travel as one JSON document per table (`jsonb_to_recordset`): building it with
# `json_rows` costs a fraction of adapting twenty Python lists element by element.
WRITE_SQL = """
WITH vr AS (
    SELECT * FROM jsonb_to_recordset(%(runs)s::jsonb) AS v(
        id text, status text, started_at timestamptz, finished_at timestamptz,
        duration_ms int, status_code int, body jsonb, body_text text, size int,
        truncated bool, error text, rules_fired jsonb, attempts jsonb)
), finished AS (
    UPDATE runs r
    SET status = v.status, started_at = v.started_at, finished_at = v.finished_at,
        duration_ms = v.duration_ms, status_code = v.status_code,
        response_body = v.body, response_text = v.body_text,
        response_size = v.size, response_truncated = coalesce(v.truncated, false),
        error_message = v.error, rules_fired = v.rules_fired, attempts = v.attempts
    FROM vr v
    WHERE r.id = v.id AND r.status = 'running' AND r.id = ANY(ARRAY(SELECT id FROM vr))
    RETURNING r.id
), ve AS (
    SELECT * FROM jsonb_to_recordset(%(endpoints)s::jsonb) AS v(
        id text, lease text, next_run_at timestamptz, source text, failures int,
        last_due_at timestamptz, last_run_at timestamptz, clear_interval bool,
        clear_oneshot bool, by_rule bool, hi_ms bigint, hi_exp timestamptz,
        ho_at timestamptz, ho_exp timestamptz, paused timestamptz, rule_reason text,
        running_delta int)
)
UPDATE endpoints e
SET next_run_at = v.next_run_at,
    next_run_source = v.source,
    failure_count = v.failures,
    last_due_at = coalesce(v.last_due_at, e.last_due_at),
    last_run_at = coalesce(v.last_run_at, e.last_run_at),
    hint_interval_ms = CASE WHEN v.by_rule THEN v.hi_ms
                            WHEN v.clear_interval THEN NULL ELSE e.hint_interval_ms END,
    hint_interval_expires_at = CASE WHEN v.by_rule THEN v.hi_exp
        WHEN v.clear_interval THEN NULL ELSE e.hint_interval_expires_at END,
    hint_oneshot_at = CASE WHEN v.by_rule THEN v.ho_at
                           WHEN v.clear_oneshot THEN NULL ELSE e.hint_oneshot_at END,
    hint_oneshot_expires_at = CASE WHEN v.by_rule THEN v.ho_exp
        WHEN v.clear_oneshot THEN NULL ELSE e.hint_oneshot_expires_at END,
    paused_until = CASE WHEN v.by_rule THEN v.paused ELSE e.paused_until END,
    hint_reason = CASE WHEN v.by_rule THEN
                           CASE WHEN v.hi_ms IS NULL AND v.ho_at IS NULL THEN NULL
                                ELSE v.rule_reason END
                       WHEN (v.clear_interval OR e.hint_interval_ms IS NULL)
                        AND (v.clear_oneshot OR e.hint_oneshot_at IS NULL)
                       THEN NULL ELSE e.hint_reason END,
    hint_source = CASE WHEN v.by_rule THEN
                           CASE WHEN v.hi_ms IS NULL AND v.ho_at IS NULL THEN NULL
                                ELSE 'rule' END
                       WHEN (v.clear_interval OR e.hint_interval_ms IS NULL)
                        AND (v.clear_oneshot OR e.hint_oneshot_at IS NULL)
                       THEN NULL ELSE e.hint_source END,
    running = e.running + coalesce(v.running_delta, 0),
    lease_owner = NULL,
    lease_until = NULL
FROM ve v
WHERE e.id = v.id AND e.lease_owner = v.lease AND e.id = ANY(ARRAY(SELECT id FROM ve))
"""


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """The finished state of one run row. `body_json` is a parsed JSON value (None: the
    body was not JSON, see `body_text`)."""

    run_id: str
    status: str  # "success" | "failed"
    started_at: datetime
    finished_at: datetime
    duration_ms: int | None = None
    status_code: int | None = None
    body_json: Any = None
    body_text: str | None = None
    size: int | None = None
    truncated: bool = False
    error: str | None = None
    rules_fired: list[dict[str, Any]] | None = None  # the response rules that fired
    attempts: list[dict[str, Any]] | None = None  # each call of a retried slot


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
    # Response rules acted on the endpoint: its hints and pause become exactly these.
    rule_state: ScheduleState | None = None
    rule_reason: str | None = None
    running_delta: int = 0  # a run detached from its endpoint (overlap allow): +1


@dataclass(frozen=True, slots=True)
class Leased:
    """An endpoint's schedule as re-read under lock, the label of its stored plan, its
    response rules (jsonb text), who wrote its hints and why, its overlap policy and its
    lease."""

    state: ScheduleState
    next_run_source: str
    rules: str | None = None
    hint_source: str | None = None
    overlap: str = "skip"
    lease_owner: str | None = None
    hint_reason: str | None = None


async def lock_leased(
    conn: AsyncConnection[Any],
    leases: Sequence[tuple[str, str | None]],
    *,
    min_floor_ms: int = 0,
) -> dict[str, Leased]:
    """Lock and read the schedule of endpoints still held under the given (endpoint id,
    lease) pairs (call inside a transaction; absent ids were taken over by another worker).
    A pair with lease None locks its endpoint whoever holds it (check `lease_owner` when an
    id comes with both). `min_floor_ms` raises every minimum interval to the quota floor."""
    if not leases:
        return {}
    params = {
        "leases": json_rows([{"id": i, "lease": t} for i, t in leases]),
        "min_floor": max(0, min_floor_ms),
    }
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(LOCK_SQL, params)
        rows = await cur.fetchall()
    return {
        row["id"]: Leased(
            _state(row),
            row["next_run_source"],
            row["rules"],
            row["hint_source"],
            row["overlap"],
            row["lease_owner"],
            row["hint_reason"],
        )
        for row in rows
    }


def _state(row: dict[str, Any]) -> ScheduleState:
    # The columns are exactly ScheduleState's fields; naming them here skips the per-row
    # field introspection of `ScheduleState.from_mapping` (hot path).
    return ScheduleState(**{name: row[name] for name in _STATE_COLUMNS})


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
    cur = await conn.execute(
        WRITE_SQL,
        {
            "runs": json_rows([run_row(o) for o in outcomes]),
            "endpoints": json_rows([_endpoint_row(u) for u in updates]),
        },
    )
    if outcomes:  # live pages (web/live.py); same pipeline and transaction, no extra round trip
        await conn.execute(RUNS_FINISHED_SQL, {"ids": [o.run_id for o in outcomes]})
    return cur.rowcount


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def run_row(o: RunOutcome) -> dict[str, Any]:
    return {
        "id": o.run_id,
        "status": o.status,
        "started_at": o.started_at.isoformat(),
        "finished_at": o.finished_at.isoformat(),
        "duration_ms": o.duration_ms,
        "status_code": o.status_code,
        "body": o.body_json,
        "body_text": o.body_text,
        "size": o.size,
        "truncated": o.truncated,
        "error": o.error,
        "rules_fired": o.rules_fired,
        "attempts": o.attempts,
    }


def _endpoint_row(u: EndpointUpdate) -> dict[str, Any]:
    return {
        "id": u.endpoint_id,
        "lease": u.lease,
        "next_run_at": u.next_run_at.isoformat(),
        "source": u.source,
        "failures": u.failure_count,
        "last_due_at": _iso(u.last_due_at),
        "last_run_at": _iso(u.last_run_at),
        "clear_interval": u.clear_interval,
        "clear_oneshot": u.clear_oneshot,
        **_rule_columns(u.rule_state, u.rule_reason),
        **({"running_delta": u.running_delta} if u.running_delta else {}),
    }


def _rule_columns(state: ScheduleState | None, reason: str | None) -> dict[str, Any]:
    if state is None:
        return {"by_rule": False}
    return {
        "by_rule": True,
        "hi_ms": state.hint_interval_ms,
        "hi_exp": _iso(state.hint_interval_expires_at),
        "ho_at": _iso(state.hint_oneshot_at),
        "ho_exp": _iso(state.hint_oneshot_expires_at),
        "paused": _iso(state.paused_until),
        "rule_reason": reason,
    }


SKIPPED_SQL = """
INSERT INTO runs (id, endpoint_id, user_id, status, source, attempt, due_at, started_at,
                  finished_at, error_message)
SELECT v.id, v.endpoint_id, e.user_id, 'skipped', v.source, 1, v.due_at, v.due_at, v.due_at,
       v.error
FROM jsonb_to_recordset(%(rows)s::jsonb) AS v(
    id text, endpoint_id text, source text, due_at timestamptz, error text)
JOIN endpoints e ON e.id = v.endpoint_id
ON CONFLICT (endpoint_id, due_at) DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class SkippedSlot:
    """A slot that came due while a run of its endpoint was still going (overlap)."""

    endpoint_id: str
    due_at: datetime
    source: str
    reason: str


async def record_skipped(conn: AsyncConnection[Any], slots: Sequence[SkippedSlot]) -> int:
    """Record skipped slots as `skipped` runs (a slot that already has a run keeps it);
    returns how many were recorded. Call in the transaction that writes the overlapping
    run, under its endpoint's lock: each slot is recorded once, whoever writes."""
    if not slots:
        return 0
    rows = [
        {
            "id": new_id(),
            "endpoint_id": s.endpoint_id,
            "source": s.source,
            "due_at": s.due_at.isoformat(),
            "error": s.reason,
        }
        for s in slots
    ]
    cur = await conn.execute(SKIPPED_SQL, {"rows": json_rows(rows)})
    return cur.rowcount
