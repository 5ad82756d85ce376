"""Reading AI planner sessions (the planner writes them). Scoped by user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.store.errors import NotFound
from cronicorn.store.tables import ai_sessions, endpoints


@dataclass(frozen=True)
class SessionRow:
    id: str
    endpoint_id: str
    endpoint_name: str
    analyzed_at: datetime
    model: str | None
    tool_calls: list[Any]
    reasoning: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    token_usage: int | None
    duration_ms: int | None
    next_analysis_at: datetime | None
    endpoint_failure_count: int | None
    warnings: list[Any]
    error: str | None
    outcome: str = "running"
    confidence: str | None = None


_COLUMNS = (
    ai_sessions.c.id,
    ai_sessions.c.endpoint_id,
    endpoints.c.name.label("endpoint_name"),
    ai_sessions.c.analyzed_at,
    ai_sessions.c.model,
    ai_sessions.c.tool_calls,
    ai_sessions.c.reasoning,
    ai_sessions.c.prompt_tokens,
    ai_sessions.c.completion_tokens,
    ai_sessions.c.token_usage,
    ai_sessions.c.duration_ms,
    ai_sessions.c.next_analysis_at,
    ai_sessions.c.endpoint_failure_count,
    ai_sessions.c.warnings,
    ai_sessions.c.error,
    ai_sessions.c.outcome,
    ai_sessions.c.confidence,
)


def _session(m: RowMapping) -> SessionRow:
    return SessionRow(**{key: m[key] for key in m.keys()})  # noqa: SIM118 - RowMapping


def _joined() -> Any:
    return select(*_COLUMNS).join(endpoints, endpoints.c.id == ai_sessions.c.endpoint_id)


async def list_for_endpoint(
    conn: AsyncConnection, user_id: str, endpoint_id: str, *, limit: int = 10, offset: int = 0
) -> tuple[list[SessionRow], int]:
    """A page of the endpoint's sessions, newest first, and their total."""
    found = await conn.scalar(
        select(endpoints.c.id).where(endpoints.c.id == endpoint_id, endpoints.c.user_id == user_id)
    )
    if found is None:
        raise NotFound("Endpoint")
    mine = (ai_sessions.c.endpoint_id == endpoint_id, ai_sessions.c.user_id == user_id)
    rows = await conn.execute(
        _joined()
        .where(*mine)
        .order_by(ai_sessions.c.analyzed_at.desc(), ai_sessions.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = await conn.scalar(select(func.count()).select_from(ai_sessions).where(*mine))
    return [_session(r._mapping) for r in rows], int(total or 0)


async def get(conn: AsyncConnection, user_id: str, session_id: str) -> SessionRow:
    row = (
        await conn.execute(
            _joined().where(ai_sessions.c.id == session_id, ai_sessions.c.user_id == user_id)
        )
    ).first()
    if row is None:
        raise NotFound("Session")
    return _session(row._mapping)
