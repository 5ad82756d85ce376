"""Response rules acting on a sibling endpoint (the flash-sale pattern).

Durable in two steps. The batch that records the run also inserts each sibling effect into
`rule_effects` (same transaction: a crash loses both or neither), without touching the
sibling: the batch holds its endpoints' locks in id order, and taking a sibling's lock inside
it could wait in a cycle with another scheduler's batch. Then `apply_pending`, called by
the writer right after the commit and by every scheduler's maintenance loop once a second
(for effects a crashed scheduler left), takes pending effects (`SKIP LOCKED`: each is
applied once), locks their targets alone in id order and deletes them in one transaction.
Only endpoints of the source's job and user that are not archived are touched, whatever the
stored rule says. A sibling whose run is in flight only gets its hints or pause (its own
write replans it under lock); any other is replanned with the governor at once and
schedulers are woken if it moved earlier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cronicorn.domain import ScheduleState, plan_on_change
from cronicorn.domain.rules import Effect, apply_effect
from cronicorn.store.json_rows import json_rows
from cronicorn.store.wakeups import WAKEUP_CHANNEL

_STATE = tuple(f.name for f in fields(ScheduleState))

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


QUEUE_SQL = """
INSERT INTO rule_effects (source_id, target_id, effect)
SELECT v.source_id, v.target_id, v.effect
FROM jsonb_to_recordset(%(rows)s::jsonb) AS v(source_id text, target_id text, effect jsonb)
"""

TAKE_SQL = """
WITH pending AS (
    SELECT id, source_id, target_id, effect FROM rule_effects
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
SELECT p.id, p.source_id, p.target_id, p.effect,
       coalesce(t.job_id = s.job_id AND t.user_id = s.user_id AND t.archived_at IS NULL, false)
           AS allowed
FROM pending p
LEFT JOIN endpoints s ON s.id = p.source_id
LEFT JOIN endpoints t ON t.id = p.target_id
ORDER BY p.id
"""

TARGETS_SQL = f"""
SELECT e.id, e.lease_owner, e.next_run_source, {", ".join("e." + c for c in _STATE)}
FROM endpoints e
WHERE e.id = ANY(%(ids)s) AND e.archived_at IS NULL
ORDER BY e.id
FOR UPDATE OF e
"""


async def queue_effects(conn: AsyncConnection[Any], effects: Sequence[tuple[str, Effect]]) -> int:
    """Record (source endpoint id, effect) pairs for `apply_pending`, in the caller's
    transaction (the batch that records the runs whose rules fired). An effect without a
    target acts on its source (a detached run's own effects)."""
    rows = [
        {"source_id": source, "target_id": e.target or source, "effect": effect_to_json(e)}
        for source, e in effects
    ]
    if rows:
        await conn.execute(QUEUE_SQL, {"rows": json_rows(rows)})
    return len(rows)


async def apply_pending(conn: AsyncConnection[Any], now: datetime, *, limit: int = 200) -> int:
    """Apply up to `limit` pending sibling effects, oldest first, in one transaction of
    their own; returns how many endpoints were written."""
    async with conn.transaction():
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(TAKE_SQL, {"limit": limit})
            pending = await cur.fetchall()
        if not pending:
            return 0
        effects = [(r["target_id"], effect_from_json(r["effect"])) for r in pending if r["allowed"]]
        written = await _apply(conn, effects, now)
        await conn.execute(
            "DELETE FROM rule_effects WHERE id = ANY(%(ids)s)", {"ids": [r["id"] for r in pending]}
        )
    return written


async def _apply(
    conn: AsyncConnection[Any], effects: Sequence[tuple[str, Effect]], now: datetime
) -> int:
    if not effects:
        return 0
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(TARGETS_SQL, {"ids": sorted({t for t, _ in effects})})
        found = {row["id"]: row for row in await cur.fetchall()}
    states = {i: ScheduleState(**{c: row[c] for c in _STATE}) for i, row in found.items()}
    reasons: dict[str, str | None] = {}
    for target, effect in effects:  # in the order they fired
        if target in states:
            states[target] = apply_effect(states[target], effect)
            reasons[target] = effect.rule_name
    rows: list[dict[str, Any]] = []
    earliest: datetime | None = None
    for target, state in states.items():
        row = found[target]
        if row["lease_owner"] is None:
            plan = plan_on_change(state, now)
            at, source = plan.at, plan.source
            if earliest is None or at < earliest:
                earliest = at
        else:  # in flight: its own write replans it under lock
            at, source = row["next_run_at"], row["next_run_source"]
        if source in _HINT_PLANS:
            source = "rule"
        rows.append(_row(target, state, at, source, reasons.get(target)))
    if rows:
        await conn.execute(WRITE_SQL, {"rows": json_rows(rows)})
    if earliest is not None:
        await conn.execute("SELECT pg_notify(%s, %s)", (WAKEUP_CHANNEL, earliest.isoformat()))
    return len(rows)


_INSTANTS = (
    "interval_expires_at",
    "oneshot_at",
    "oneshot_expires_at",
    "paused_until",
)


def effect_to_json(effect: Effect) -> dict[str, Any]:
    out = effect._asdict()
    for name in _INSTANTS:
        out[name] = _iso(out[name])
    return out


def effect_from_json(raw: dict[str, Any]) -> Effect:
    values = dict(raw)
    for name in _INSTANTS:
        if values.get(name) is not None:
            values[name] = datetime.fromisoformat(values[name])
    return Effect(**values)


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
