"""Response rules acting on a sibling endpoint (the flash-sale pattern).

Applied by the scheduler right after the batch that recorded the run commits, in a short
transaction of its own: the batch already holds its endpoints' locks in id order, and taking
a sibling's lock inside it could wait in a cycle with another scheduler's batch. Here the
siblings are locked alone, in id order, and only endpoints of the same job and user that are
not archived are touched, whatever the stored rule says. A sibling whose run is in flight
only gets its hints or pause (its own write replans it under lock); any other is replanned
with the governor at once and schedulers are woken if it moved earlier.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cronicorn.domain import ScheduleState, plan_on_change
from cronicorn.domain.rules import Effect, apply_effect
from cronicorn.store.notify import WAKEUP_CHANNEL

_STATE = tuple(f.name for f in fields(ScheduleState))

LOCK_SQL = f"""
SELECT e.id, e.lease_owner, e.next_run_source, {", ".join("e." + c for c in _STATE)}
FROM endpoints e
JOIN endpoints src ON src.id = %(source)s
WHERE e.id = ANY(%(ids)s) AND e.job_id = src.job_id AND e.user_id = src.user_id
  AND e.archived_at IS NULL
ORDER BY e.id
FOR UPDATE OF e
"""

WRITE_SQL = """
WITH v AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS v(
        id text, hint_interval_ms bigint, hint_interval_expires_at timestamptz,
        hint_oneshot_at timestamptz, hint_oneshot_expires_at timestamptz,
        paused_until timestamptz, next_run_at timestamptz, source text, reason text)
)
UPDATE endpoints e
SET hint_interval_ms = v.hint_interval_ms,
    hint_interval_expires_at = v.hint_interval_expires_at,
    hint_oneshot_at = v.hint_oneshot_at,
    hint_oneshot_expires_at = v.hint_oneshot_expires_at,
    paused_until = v.paused_until,
    next_run_at = v.next_run_at,
    next_run_source = v.source,
    hint_source = CASE WHEN v.hint_interval_ms IS NULL AND v.hint_oneshot_at IS NULL
                       THEN NULL ELSE 'rule' END,
    hint_reason = CASE WHEN v.hint_interval_ms IS NULL AND v.hint_oneshot_at IS NULL
                       THEN NULL ELSE v.reason END,
    version = e.version + 1,
    updated_at = now()
FROM v
WHERE e.id = v.id
"""

_HINT_PLANS = frozenset({"ai-interval", "ai-oneshot"})


async def apply_to_siblings(
    conn: AsyncConnection[Any], source_id: str, effects: Sequence[Effect], now: datetime
) -> int:
    """Apply `effects` (each naming its target) from `source_id`'s rules; returns how many
    siblings were written. Call inside a transaction."""
    by_target = {e.target: e for e in effects if e.target is not None and e.target != source_id}
    if not by_target:
        return 0
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(LOCK_SQL, {"source": source_id, "ids": list(by_target)})
        found = await cur.fetchall()
    rows: list[dict[str, Any]] = []
    earliest: datetime | None = None
    for row in found:
        effect = by_target[row["id"]]
        state = apply_effect(ScheduleState(**{c: row[c] for c in _STATE}), effect)
        if row["lease_owner"] is None:
            plan = plan_on_change(state, now)
            at, source = plan.at, plan.source
            if earliest is None or at < earliest:
                earliest = at
        else:  # in flight: its own write replans it under lock
            at, source = row["next_run_at"], row["next_run_source"]
        if source in _HINT_PLANS:
            source = "rule"
        rows.append(_row(row["id"], state, at, source, effect.rule_name))
    if rows:
        await conn.execute(WRITE_SQL, {"rows": json.dumps(rows)})
    if earliest is not None:
        await conn.execute("SELECT pg_notify(%s, %s)", (WAKEUP_CHANNEL, earliest.isoformat()))
    return len(rows)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _row(
    endpoint_id: str, state: ScheduleState, at: datetime, source: str, reason: str | None
) -> dict[str, Any]:
    return {
        "id": endpoint_id,
        "hint_interval_ms": state.hint_interval_ms,
        "hint_interval_expires_at": _iso(state.hint_interval_expires_at),
        "hint_oneshot_at": _iso(state.hint_oneshot_at),
        "hint_oneshot_expires_at": _iso(state.hint_oneshot_expires_at),
        "paused_until": _iso(state.paused_until),
        "next_run_at": at.isoformat(),
        "source": source,
        "reason": reason or "response rule",
    }
