"""What the AI planner did and proposes (as `/api/endpoints/{id}/sessions`, `/api/sessions/{id}`
and the suggestion routes). In suggest mode the planner records suggestions instead of acting;
applying one runs the same checks as the hint and pause tools."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from cronicorn.mcp.tooling import Call, NoArguments, PathId, Tool
from cronicorn.schemas.common import In
from cronicorn.schemas.history import Session, SessionDetail, SessionList
from cronicorn.schemas.suggestions import Suggestion, SuggestionList, SuggestionStatus
from cronicorn.store import ai_sessions as session_store
from cronicorn.store import suggestions as suggestion_store

ENDPOINT_ID = (PathId("id", "Endpoint", "The endpoint's id"),)


class SessionQuery(In):
    limit: int = Field(default=10, ge=1, le=100, description="Page size (1-100)")
    offset: int = Field(default=0, ge=0, le=1_000_000, description="Sessions to skip (paging)")


class SuggestionQuery(In):
    status: SuggestionStatus | None = Field(default=None, description="Only this status")
    limit: int = Field(default=50, ge=1, le=100, description="At most this many (1-100)")


async def _sessions(call: Call, query: SessionQuery) -> SessionList:
    rows, total = await session_store.list_for_endpoint(
        call.conn, call.user_id, call.id("id"), limit=query.limit, offset=query.offset
    )
    return SessionList(sessions=[Session.of(row) for row in rows], total=total)


async def _session(call: Call, _: NoArguments) -> SessionDetail:
    return SessionDetail.of(await session_store.get(call.conn, call.user_id, call.id("id")))


async def _suggestions(call: Call, query: SuggestionQuery) -> SuggestionList:
    rows = await suggestion_store.list_for_endpoint(
        call.conn, call.user_id, call.id("id"), call.now, status=query.status, limit=query.limit
    )
    return SuggestionList(suggestions=[Suggestion.of(row) for row in rows])


async def _apply(call: Call, _: NoArguments) -> Suggestion:
    row = await suggestion_store.apply(
        call.conn, call.user_id, call.id("id"), call.now, quotas=call.runtime.settings.quotas
    )
    return Suggestion.of(row)


async def _dismiss(call: Call, _: NoArguments) -> Suggestion:
    return Suggestion.of(
        await suggestion_store.dismiss(call.conn, call.user_id, call.id("id"), call.now)
    )


SUGGESTION_ID = (PathId("id", "Suggestion", "The suggestion's id (from listSuggestions)"),)

TOOLS: list[Tool[Any]] = [
    Tool(
        "listAiSessions",
        "AI planner sessions",
        "An endpoint's AI planner sessions, newest first: the tools it called, its reasoning, "
        "tokens, outcome (applied, suggested, no_change, failed, …) and confidence.",
        SessionQuery,
        _sessions,
        ids=ENDPOINT_ID,
        output=SessionList,
        read_only=True,
    ),
    Tool(
        "getAiSession",
        "One AI planner session",
        "One AI planner session with its endpoint.",
        NoArguments,
        _session,
        ids=(PathId("id", "Session", "The session's id (from listAiSessions)"),),
        output=SessionDetail,
        read_only=True,
    ),
    Tool(
        "listSuggestions",
        "AI suggestions",
        "What the AI planner proposed for an endpoint in suggest mode (aiMode suggest), newest "
        "first. Pending suggestions lapse at expiresAt. Filter by status.",
        SuggestionQuery,
        _suggestions,
        ids=ENDPOINT_ID,
        output=SuggestionList,
        read_only=True,
    ),
    Tool(
        "applySuggestion",
        "Apply a suggestion",
        "Apply a pending suggestion: writes its hint or pause. One that lapsed or was decided "
        "already is a 409; one that no longer fits the endpoint's min/max is a 422.",
        NoArguments,
        _apply,
        ids=SUGGESTION_ID,
        output=Suggestion,
    ),
    Tool(
        "dismissSuggestion",
        "Dismiss a suggestion",
        "Dismiss a pending suggestion without applying it.",
        NoArguments,
        _dismiss,
        ids=SUGGESTION_ID,
        output=Suggestion,
        idempotent=True,
    ),
]
