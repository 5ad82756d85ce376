"""Suggestions: what the AI planner would do in suggest mode, until a user applies or
dismisses it. Applying goes through the same store functions (and so the same validation)
as the hint routes; a suggestion past its expiry lapses and can no longer be applied.
A new session's suggestions supersede the endpoint's earlier pending ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain import NO_QUOTAS, Quotas
from cronicorn.domain.ids import new_id
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store.errors import Conflict, NotFound
from cronicorn.store.tables import ai_suggestions, endpoints

HINT_SOURCE_AI = "ai"


@dataclass(frozen=True)
class SuggestionRow:
    id: str
    endpoint_id: str
    session_id: str | None
    action: str
    args: dict[str, Any]
    reason: str | None
    status: str
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    error: str | None


def _row(m: RowMapping, now: datetime) -> SuggestionRow:
    status = m["status"]
    if status == "pending" and m["expires_at"] <= now:
        status = "expired"  # lapsed; the planner's retention pass writes it down
    return SuggestionRow(
        id=m["id"],
        endpoint_id=m["endpoint_id"],
        session_id=m["session_id"],
        action=m["action"],
        args=dict(m["args"] or {}),
        reason=m["reason"],
        status=status,
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        decided_at=m["decided_at"],
        error=m["error"],
    )


async def supersede_pending(conn: AsyncConnection, endpoint_id: str, now: datetime) -> None:
    await conn.execute(
        update(ai_suggestions)
        .where(ai_suggestions.c.endpoint_id == endpoint_id, ai_suggestions.c.status == "pending")
        .values(status="superseded", decided_at=now)
    )


async def record(
    conn: AsyncConnection,
    *,
    endpoint_id: str,
    user_id: str,
    session_id: str | None,
    action: str,
    args: dict[str, Any],
    reason: str | None,
    expires_at: datetime,
    now: datetime,
) -> str:
    suggestion_id = new_id()
    await conn.execute(
        insert(ai_suggestions).values(
            id=suggestion_id,
            endpoint_id=endpoint_id,
            user_id=user_id,
            session_id=session_id,
            action=action,
            args=args,
            reason=reason,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return suggestion_id


async def list_for_endpoint(
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    now: datetime,
    *,
    status: str | None = None,
    limit: int = 50,
) -> list[SuggestionRow]:
    """Newest first; `status` filters (`pending` excludes lapsed ones)."""
    found = await conn.scalar(
        select(endpoints.c.id).where(endpoints.c.id == endpoint_id, endpoints.c.user_id == user_id)
    )
    if found is None:
        raise NotFound("Endpoint")
    rows = await conn.execute(
        select(ai_suggestions)
        .where(ai_suggestions.c.endpoint_id == endpoint_id, ai_suggestions.c.user_id == user_id)
        .order_by(ai_suggestions.c.created_at.desc(), ai_suggestions.c.id.desc())
        .limit(limit if status is None else 1000)
    )
    out = [_row(r._mapping, now) for r in rows]
    if status is not None:
        out = [s for s in out if s.status == status][:limit]
    return out


async def _pending(
    conn: AsyncConnection, user_id: str, suggestion_id: str, now: datetime
) -> SuggestionRow:
    row = (
        await conn.execute(
            select(ai_suggestions)
            .where(ai_suggestions.c.id == suggestion_id, ai_suggestions.c.user_id == user_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound("Suggestion")
    suggestion = _row(row._mapping, now)
    if suggestion.status != "pending":
        raise Conflict(f"Suggestion is {suggestion.status}, not pending")
    return suggestion


async def _decide(
    conn: AsyncConnection, suggestion: SuggestionRow, status: str, now: datetime
) -> SuggestionRow:
    await conn.execute(
        update(ai_suggestions)
        .where(ai_suggestions.c.id == suggestion.id)
        .values(status=status, decided_at=now)
    )
    return SuggestionRow(**{**suggestion.__dict__, "status": status, "decided_at": now})


async def dismiss(
    conn: AsyncConnection, user_id: str, suggestion_id: str, now: datetime
) -> SuggestionRow:
    return await _decide(conn, await _pending(conn, user_id, suggestion_id, now), "dismissed", now)


async def apply(
    conn: AsyncConnection,
    user_id: str,
    suggestion_id: str,
    now: datetime,
    *,
    quotas: Quotas = NO_QUOTAS,
) -> SuggestionRow:
    """Write the suggested hint or pause as if the user had sent it (same checks: `Invalid`
    when it no longer fits the endpoint's bounds), then mark the suggestion applied."""
    s = await _pending(conn, user_id, suggestion_id, now)
    args, reason = s.args, s.reason
    if s.action == "interval":
        await endpoint_store.set_interval_hint(
            conn,
            user_id,
            s.endpoint_id,
            interval_ms=int(args["intervalMs"]),
            expires_at=now + timedelta(minutes=float(args["ttlMinutes"])),
            reason=reason,
            now=now,
            source=HINT_SOURCE_AI,
            quotas=quotas,
        )
    elif s.action == "oneshot":
        at = datetime.fromisoformat(args["nextRunAt"])
        ttl_end = now + timedelta(minutes=float(args["ttlMinutes"]))
        await endpoint_store.set_oneshot_hint(
            conn,
            user_id,
            s.endpoint_id,
            at=at,
            expires_at=max(ttl_end, at + timedelta(minutes=1)),
            reason=reason,
            now=now,
            source=HINT_SOURCE_AI,
        )
    elif s.action in ("pause", "resume"):
        until = datetime.fromisoformat(args["pausedUntil"]) if s.action == "pause" else None
        await endpoint_store.set_paused_until(conn, user_id, s.endpoint_id, until, now)
    else:
        await endpoint_store.clear_hints(conn, user_id, s.endpoint_id, now)
    return await _decide(conn, s, "applied", now)
