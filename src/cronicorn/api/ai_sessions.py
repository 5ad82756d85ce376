"""`/api/endpoints/{id}/sessions` and `/api/sessions/{id}`: what the AI planner did."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cronicorn.api.deps import ConnDep, UserDep
from cronicorn.api.params import require_id
from cronicorn.schemas.history import Session, SessionDetail, SessionList
from cronicorn.store import ai_sessions as session_store

router = APIRouter(tags=["AI Analysis"])


@router.get(
    "/endpoints/{id}/sessions",
    response_model=SessionList,
    summary="An endpoint's AI planner sessions, newest first",
)
async def list_sessions(
    id: str,
    user: UserDep,
    conn: ConnDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> SessionList:
    rows, total = await session_store.list_for_endpoint(
        conn, user.user_id, require_id(id, "Endpoint"), limit=limit, offset=offset
    )
    return SessionList(sessions=[Session.of(row) for row in rows], total=total)


@router.get("/sessions/{id}", response_model=SessionDetail, summary="One AI planner session")
async def get_session(id: str, user: UserDep, conn: ConnDep) -> SessionDetail:
    return SessionDetail.of(await session_store.get(conn, user.user_id, require_id(id, "Session")))
