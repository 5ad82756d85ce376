"""The notification outbox: events written with the change that caused them, delivered by
any scheduler process under a per-channel lease.

Writing (hot path): `enqueue_run_events` runs inside the scheduler's batch transaction, after
the runs and plans are written, as ONE call of `cronicorn_enqueue_run_events` (migration
0009: the event rules in SQL, planned once per session), which stops after one indexed probe
unless an endpoint of the batch has notify settings (its own or its job's). Pauses by the
planner or a rule and a reached run quota are enqueued by triggers (migration 0009). Every
row has a `dedup_key` (event, run or period, channel), unique, so a retried batch or a second
trigger firing adds nothing.

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

from cronicorn.store.channels import ACCOUNT_KEY
from cronicorn.store.json_rows import json_rows
from cronicorn.store.run_writes import EndpointUpdate, Leased, RunOutcome
from cronicorn.store.tables import notify_deliveries, notify_outbox

EVENTS = (
    "failure",
    "recovery",
    "reminder",
    "slow",
    "paused",
    "resumed",
    "quota",
    "backup_failed",
)
ADMIN_EVENTS = ("backup_failed",)  # account-level: subscribed in `account_notify:<user>`

ENQUEUE_SQL = "SELECT cronicorn_enqueue_run_events(%(facts)s::jsonb, %(now)s::timestamptz)"


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
    taker writes them, and their events. So are runs not among `outcomes`: detached runs
    (overlap `allow`), whose write returns their own facts (`detached_runs.finish`)."""
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
        if item.outcome is not None and outcome is None:
            continue  # written apart from the endpoint's plan, with facts of its own
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
    await enqueue_facts(conn, run_facts(batch, outcomes, updates, leased), now)


async def enqueue_facts(
    conn: PgConnection[Any], facts: Sequence[Mapping[str, Any]], now: datetime
) -> None:
    """The run events of runs already written, from their facts (`run_facts`' shape, e.g.
    from `detached_runs.finish`); call inside the transaction that wrote them."""
    if facts:
        await conn.execute(ENQUEUE_SQL, {"facts": json_rows(facts), "now": now})


ENQUEUE_ADMIN_SQL = text(
    """
    INSERT INTO notify_outbox (channel_id, user_id, event, dedup_key, payload, created_at,
                               next_attempt_at)
    SELECT c.id, u.id, :event, :dedup || ':' || c.id, CAST(:payload AS jsonb), :now, :now
    FROM users u
    JOIN settings s ON s.key = :prefix || u.id
    CROSS JOIN LATERAL jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(s.value -> 'channels') = 'array'
             THEN s.value -> 'channels' ELSE '[]'::jsonb END) AS ch(id)
    JOIN channels c ON c.id = ch.id AND c.user_id = u.id
    WHERE u.is_admin AND u.disabled_at IS NULL
      AND jsonb_typeof(s.value -> 'events') = 'array'
      AND jsonb_exists(s.value -> 'events', :event)
    ON CONFLICT (dedup_key) DO NOTHING
    """
)


async def enqueue_admin_event(
    conn: AsyncConnection, event: str, dedup: str, payload: Mapping[str, Any], now: datetime
) -> int:
    """An account-level event (a scheduled backup failed) for every enabled admin's channels
    that subscribe to it; `dedup` names the occurrence (e.g. the backup slot), so several
    processes reporting it add one row per channel. Returns the rows added."""
    assert event in ADMIN_EVENTS, event
    result = await conn.execute(
        ENQUEUE_ADMIN_SQL,
        {
            "event": event,
            "dedup": dedup,
            "payload": json.dumps({"event": event, **payload}),
            "now": now,
            "prefix": ACCOUNT_KEY,
        },
    )
    return result.rowcount


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
