"""`/api/endpoints/{id}/suggestions` and `/api/suggestions/{id}/apply|dismiss`: what the AI
planner proposed for endpoints in suggest mode. Applying runs the same checks as the hint
and pause routes (a suggestion that no longer fits the endpoint's bounds is a 422); one
that lapsed or was already decided is a 409."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cronicorn.api.deps import ConnDep, QuotasDep, UserDep
from cronicorn.api.params import NowDep, require_id
from cronicorn.schemas.suggestions import Suggestion, SuggestionList, SuggestionStatus
from cronicorn.store import suggestions as suggestion_store

router = APIRouter(tags=["AI Analysis"])


@router.get(
    "/endpoints/{id}/suggestions",
    response_model=SuggestionList,
    summary="The AI planner's suggestions for an endpoint, newest first",
    description="In suggest mode (`aiMode: suggest`) the planner records what it would do "
    "instead of doing it. Pending suggestions lapse at `expiresAt`.",
)
async def list_suggestions(
    id: str,
    user: UserDep,
    conn: ConnDep,
    now: NowDep,
    status: Annotated[SuggestionStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> SuggestionList:
    rows = await suggestion_store.list_for_endpoint(
        conn, user.user_id, require_id(id, "Endpoint"), now, status=status, limit=limit
    )
    return SuggestionList(suggestions=[Suggestion.of(row) for row in rows])


@router.post(
    "/suggestions/{id}/apply",
    response_model=Suggestion,
    summary="Apply a pending suggestion (writes the hint or pause)",
)
async def apply_suggestion(
    id: str, user: UserDep, conn: ConnDep, quotas: QuotasDep, now: NowDep
) -> Suggestion:
    row = await suggestion_store.apply(
        conn, user.user_id, require_id(id, "Suggestion"), now, quotas=quotas
    )
    return Suggestion.of(row)


@router.post(
    "/suggestions/{id}/dismiss",
    response_model=Suggestion,
    summary="Dismiss a pending suggestion",
)
async def dismiss_suggestion(id: str, user: UserDep, conn: ConnDep, now: NowDep) -> Suggestion:
    row = await suggestion_store.dismiss(conn, user.user_id, require_id(id, "Suggestion"), now)
    return Suggestion.of(row)
