"""The notification outbox: events written with the change that caused them, delivered by
any scheduler process under a per-channel lease.

Writing (hot path): `enqueue_run_events` runs inside the scheduler's batch transaction, after
the runs and plans are written, as ONE statement that inserts nothing unless an endpoint of
the batch has notify settings (its own or its job's). Pauses by the planner or a rule and a
reached run quota are enqueued by triggers (migration 0009). Every row has a `dedup_key`
(event, run or period, channel), unique, so a retried batch or a second trigger firing adds
nothing.

Delivering: `claim_channels` leases channels that have due rows and whose rate-limit gap has
passed (`FOR UPDATE SKIP LOCKED`, then a compare-and-set lease), so one process at a time
sends to a channel and its pending events go out grouped in one message. `finish_sent` /
`finish_failed` write the outcome and release the lease in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from psycopg import AsyncConnection as PgConnection
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.store.run_writes import EndpointUpdate, Leased, RunOutcome
from cronicorn.store.tables import notify_deliveries, notify_outbox

EVENTS = ("failure", "recovery", "reminder", "slow", "paused", "resumed", "quota")

ENQUEUE_SQL = """
WITH f AS (
    SELECT * FROM jsonb_to_recordset(%(facts)s::jsonb) AS f(
        endpoint_id text, run_id text, status text, before int, after int, duration_ms int,
        status_code int, error text, finished_at timestamptz)
), s AS (
    SELECT f.*, e.user_id, e.job_id, e.name AS endpoint_name, j.name AS job_name,
           coalesce(e.notify, j.notify) AS n
    FROM f
    JOIN endpoints e ON e.id = f.endpoint_id
    JOIN jobs j ON j.id = e.job_id
    WHERE e.id = ANY(ARRAY(SELECT endpoint_id FROM f))
      AND coalesce(e.notify, j.notify) IS NOT NULL
), p AS (
    -- Settings are read defensively (the API validates them, a hand-made row may not):
    -- a wrong type means the default, never an error that would abort the batch.
    SELECT s.*,
           CASE WHEN jsonb_typeof(s.n -> 'onFailureAfter') = 'number'
                THEN least(greatest((s.n ->> 'onFailureAfter')::numeric, 1), 1000000)::int
                ELSE 1 END AS threshold,
           CASE WHEN jsonb_typeof(s.n -> 'onRecovery') = 'boolean'
                THEN (s.n ->> 'onRecovery')::boolean ELSE true END AS on_recovery,
           CASE WHEN jsonb_typeof(s.n -> 'reminderHours') = 'number'
                THEN least(greatest((s.n ->> 'reminderHours')::numeric, 0), 100000)::float8
                ELSE 0 END AS reminder_h,
           CASE WHEN jsonb_typeof(s.n -> 'slowerThanMs') = 'number'
                THEN least(greatest((s.n ->> 'slowerThanMs')::numeric, 0), 1e15)::bigint
                END AS slow_ms,
           CASE WHEN jsonb_typeof(s.n -> 'channels') = 'array'
                THEN s.n -> 'channels' ELSE '[]'::jsonb END AS channel_ids
    FROM s
), ev AS (
    SELECT p.*, x.event, x.dedup
    FROM p
    CROSS JOIN LATERAL (VALUES
        (CASE WHEN p.status = 'failed' AND p.before < p.threshold
                   AND p.after >= p.threshold THEN 'failure' END,
         'failure:' || p.endpoint_id || ':' || coalesce(p.run_id, p.after::text)),
        (CASE WHEN p.status = 'success' AND p.before >= p.threshold AND p.on_recovery
              THEN 'recovery' END,
         'recovery:' || p.endpoint_id || ':' || coalesce(p.run_id, '')),
        (CASE WHEN p.status = 'failed' AND p.before >= p.threshold AND p.reminder_h > 0
                   AND NOT EXISTS (
                       SELECT 1 FROM notify_outbox o
                       WHERE o.endpoint_id = p.endpoint_id
                         AND o.event IN ('failure', 'reminder')
                         AND o.created_at > %(now)s::timestamptz
                             - make_interval(secs => p.reminder_h * 3600))
              THEN 'reminder' END,
         'reminder:' || p.endpoint_id || ':' || coalesce(p.run_id, p.after::text)),
        (CASE WHEN p.slow_ms IS NOT NULL AND p.duration_ms > p.slow_ms THEN 'slow' END,
         'slow:' || p.endpoint_id || ':'
             || floor(extract(epoch FROM p.finished_at) / 3600)::bigint::text)
    ) AS x(event, dedup)
    WHERE x.event IS NOT NULL
)
INSERT INTO notify_outbox (channel_id, user_id, event, dedup_key, endpoint_id, job_id, run_id,
                           payload, created_at, next_attempt_at)
SELECT c.id, ev.user_id, ev.event, ev.dedup || ':' || c.id, ev.endpoint_id, ev.job_id,
       ev.run_id,
       jsonb_strip_nulls(jsonb_build_object(
           'event', ev.event, 'endpointId', ev.endpoint_id, 'endpointName', ev.endpoint_name,
           'jobId', ev.job_id, 'jobName', ev.job_name, 'runId', ev.run_id,
           'status', ev.status, 'error', ev.error, 'statusCode', ev.status_code,
           'durationMs', ev.duration_ms, 'slowerThanMs', ev.slow_ms,
           'failures', greatest(ev.before, ev.after), 'at', ev.finished_at,
           'since', CASE WHEN ev.event <> 'slow' THEN (
               SELECT min(r.started_at) FROM (
                   SELECT r.started_at FROM runs r
                   WHERE r.endpoint_id = ev.endpoint_id AND r.status = 'failed'
                   ORDER BY r.started_at DESC
                   LIMIT greatest(ev.before, ev.after, 1)) r) END)),
       %(now)s::timestamptz, %(now)s::timestamptz
FROM ev
CROSS JOIN LATERAL jsonb_array_elements(ev.channel_ids) AS ch(value)
JOIN channels c ON c.id = ch.value #>> '{}' AND c.user_id = ev.user_id
ON CONFLICT (dedup_key) DO NOTHING
"""


class _Item(Protocol):
    """What the scheduler's writer hands over per endpoint of a batch."""

    @property
    def endpoint_id(self) -> str: ...

    @property
    def outcome(self) -> RunOutcome | None: ...


def run_facts(
    batch: Sequence[_Item],
    outcomes: Sequence[RunOutcome],
    updates: Sequence[EndpointUpdate],
    leased: Mapping[str, Leased],
) -> list[dict[str, Any]]:
    """Per endpoint written: the run's final status and the failure streak before and after
    (what the events are decided from). Endpoints whose lease was lost are left out: the
    taker writes them, and their events."""
    final = {o.run_id: o for o in outcomes}
    after = {u.endpoint_id: u.failure_count for u in updates}
    facts: list[dict[str, Any]] = []
    for item in batch:
        row = leased.get(item.endpoint_id)
        streak = after.get(item.endpoint_id)
        if row is None or streak is None:
            continue
        before = row.state.failure_count
        outcome = final.get(item.outcome.run_id) if item.outcome is not None else None
        if outcome is not None:
            status = outcome.status
        elif streak > before:
            status = "failed"  # a lost worker's run: counted as a failure
        else:
            continue
        facts.append(
            {
                "endpoint_id": item.endpoint_id,
                "run_id": outcome.run_id if outcome else None,
                "status": status,
                "before": before,
                "after": streak,
                "duration_ms": outcome.duration_ms if outcome else None,
                "status_code": outcome.status_code if outcome else None,
                "error": (outcome.error if outcome else "worker lost") or None,
                "finished_at": outcome.finished_at.isoformat() if outcome else None,
            }
        )
    return facts


async def enqueue_run_events(
    conn: PgConnection[Any],
    batch: Sequence[_Item],
    outcomes: Sequence[RunOutcome],
    updates: Sequence[EndpointUpdate],
    leased: Mapping[str, Leased],
    now: datetime,
) -> None:
    """Inside the batch transaction: failure, recovery, reminder and slow-run events of the
    batch's endpoints into the outbox (nothing for endpoints without notify settings)."""
    facts = run_facts(batch, outcomes, updates, leased)
    if facts:
        await conn.execute(ENQUEUE_SQL, {"facts": json.dumps(facts), "now": now})


# -- delivery ----------------------------------------------------------------------------

CLAIM_SQL = text(
    """
    UPDATE channels c
    SET lease_owner = :owner, lease_until = :until
    WHERE c.id IN (
        SELECT ch.id FROM channels ch
        WHERE ch.id IN (SELECT DISTINCT o.channel_id FROM notify_outbox o
                        WHERE o.state = 'pending' AND o.next_attempt_at <= :now)
          AND ch.next_send_at <= :now
          AND (ch.lease_until IS NULL OR ch.lease_until < :now)
        ORDER BY ch.next_send_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED)
    RETURNING c.id, c.user_id, c.name, c.kind, c.url_encrypted, c.consecutive_failures
    """
)

PENDING_SQL = text(
    """
    SELECT id, event, payload, attempts, created_at FROM notify_outbox
    WHERE channel_id = :channel AND state = 'pending' AND next_attempt_at <= :now
    ORDER BY id
    LIMIT :limit
    """
)


@dataclass(frozen=True)
class ClaimedChannel:
    id: str
    user_id: str
    name: str
    kind: str
    url_encrypted: bytes
    consecutive_failures: int


@dataclass(frozen=True)
class Pending:
    id: int
    event: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


async def claim_channels(
    conn: AsyncConnection, owner: str, *, now: datetime, lease: timedelta, limit: int
) -> list[ClaimedChannel]:
    rows = await conn.execute(
        CLAIM_SQL, {"owner": owner, "until": now + lease, "now": now, "limit": limit}
    )
    return [
        ClaimedChannel(
            r.id, r.user_id, r.name, r.kind, bytes(r.url_encrypted), r.consecutive_failures
        )
        for r in rows
    ]


async def pending_for(
    conn: AsyncConnection, channel_id: str, *, now: datetime, limit: int
) -> list[Pending]:
    rows = await conn.execute(PENDING_SQL, {"channel": channel_id, "now": now, "limit": limit})
    return [Pending(r.id, r.event, r.payload, r.attempts, r.created_at) for r in rows]


FINISH_CHANNEL_SQL = text(
    """
    UPDATE channels
    SET lease_owner = NULL, lease_until = NULL, next_send_at = :next_send_at,
        failing = CASE WHEN :ok THEN false ELSE failing OR :failing END,
        consecutive_failures = CASE WHEN :ok THEN 0 ELSE consecutive_failures + 1 END,
        last_success_at = CASE WHEN :ok THEN :now ELSE last_success_at END,
        last_error_at = CASE WHEN :ok THEN last_error_at ELSE :now END,
        last_error = CASE WHEN :ok THEN last_error ELSE :error END
    WHERE id = :channel AND lease_owner = :owner
    """
)


async def finish_sent(
    conn: AsyncConnection,
    channel: ClaimedChannel,
    ids: Sequence[int],
    *,
    owner: str,
    now: datetime,
    gap: timedelta,
    duration_ms: int,
) -> bool:
    """Mark the rows sent, record the delivery, release the lease; False if the lease was
    taken over meanwhile (the rows are marked sent all the same: they were sent)."""
    await conn.execute(
        text(
            "UPDATE notify_outbox SET state = 'sent', sent_at = :now, attempts = attempts + 1 "
            "WHERE id = ANY(:ids) AND state = 'pending'"
        ),
        {"now": now, "ids": list(ids)},
    )
    await conn.execute(
        notify_deliveries.insert().values(
            channel_id=channel.id, at=now, ok=True, events=len(ids), duration_ms=duration_ms
        )
    )
    result = await conn.execute(
        FINISH_CHANNEL_SQL,
        {
            "channel": channel.id,
            "owner": owner,
            "now": now,
            "ok": True,
            "failing": False,
            "error": None,
            "next_send_at": now + gap,
        },
    )
    return result.rowcount == 1


async def finish_failed(
    conn: AsyncConnection,
    channel: ClaimedChannel,
    rows: Sequence[Pending],
    *,
    owner: str,
    now: datetime,
    error: str,
    retry_in: timedelta,
    max_attempts: int,
    permanent: bool,
    duration_ms: int,
) -> int:
    """Count the attempt on each row (retry after `retry_in`; give up after `max_attempts`
    or at once on a permanent error), hold the channel back as long, mark it failing when a
    row was given up. Returns how many rows were given up."""
    given_up = [r.id for r in rows if permanent or r.attempts + 1 >= max_attempts]
    retried = [r.id for r in rows if r.id not in set(given_up)]
    if retried:
        await conn.execute(
            text(
                "UPDATE notify_outbox SET attempts = attempts + 1, last_error = :error, "
                "next_attempt_at = :at WHERE id = ANY(:ids) AND state = 'pending'"
            ),
            {"error": error, "at": now + retry_in, "ids": retried},
        )
    if given_up:
        await conn.execute(
            text(
                "UPDATE notify_outbox SET attempts = attempts + 1, last_error = :error, "
                "state = 'failed' WHERE id = ANY(:ids) AND state = 'pending'"
            ),
            {"error": error, "ids": given_up},
        )
    await conn.execute(
        notify_deliveries.insert().values(
            channel_id=channel.id,
            at=now,
            ok=False,
            events=len(rows),
            duration_ms=duration_ms,
            error=error,
        )
    )
    await conn.execute(
        FINISH_CHANNEL_SQL,
        {
            "channel": channel.id,
            "owner": owner,
            "now": now,
            "ok": False,
            "failing": bool(given_up),
            "error": error,
            "next_send_at": now + retry_in,
        },
    )
    return len(given_up)


async def release(conn: AsyncConnection, channel_id: str, owner: str) -> None:
    """Give a lease back without sending (nothing was due after all, or shutting down)."""
    await conn.execute(
        text(
            "UPDATE channels SET lease_owner = NULL, lease_until = NULL "
            "WHERE id = :channel AND lease_owner = :owner"
        ),
        {"channel": channel_id, "owner": owner},
    )


async def prune(conn: AsyncConnection, older_than: datetime) -> int:
    """Drop sent and given-up rows and delivery history older than the retention."""
    gone = await conn.execute(
        delete(notify_outbox).where(
            notify_outbox.c.state != "pending", notify_outbox.c.created_at < older_than
        )
    )
    await conn.execute(delete(notify_deliveries).where(notify_deliveries.c.at < older_than))
    return gone.rowcount


async def history(conn: AsyncConnection, channel_id: str, limit: int) -> list[dict[str, Any]]:
    """The channel's latest sends, newest first."""
    rows = await conn.execute(
        text(
            "SELECT at, ok, events, duration_ms, error FROM notify_deliveries "
            "WHERE channel_id = :channel ORDER BY at DESC, id DESC LIMIT :limit"
        ),
        {"channel": channel_id, "limit": limit},
    )
    return [dict(r._mapping) for r in rows]
