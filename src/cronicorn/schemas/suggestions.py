"""Suggestions of the AI planner in suggest mode: response models."""

from __future__ import annotations

from typing import Literal

from pydantic import JsonValue

from cronicorn.schemas.common import Out, UtcDatetime
from cronicorn.store.suggestions import SuggestionRow

SuggestionStatus = Literal["pending", "applied", "dismissed", "superseded", "expired"]


class Suggestion(Out):
    id: str
    endpoint_id: str
    session_id: str | None
    action: Literal["interval", "oneshot", "pause", "resume", "clear"]
    args: dict[str, JsonValue]
    reason: str | None
    status: SuggestionStatus
    created_at: UtcDatetime
    expires_at: UtcDatetime
    decided_at: UtcDatetime | None
    error: str | None

    @classmethod
    def of(cls, row: SuggestionRow) -> Suggestion:
        return cls(
            id=row.id,
            endpoint_id=row.endpoint_id,
            session_id=row.session_id,
            action=row.action,
            args=row.args,
            reason=row.reason,
            status=row.status,
            created_at=row.created_at,
            expires_at=row.expires_at,
            decided_at=row.decided_at,
            error=row.error,
        )


class SuggestionList(Out):
    suggestions: list[Suggestion]
