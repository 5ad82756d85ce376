"""`GET /api/audit`: the audit log, newest first, with filters and cursor paging. A user sees
the changes to what they own (their jobs, endpoints, channels, keys, account); an admin sees
everything. Entries are written by database triggers (docs/audit.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from cronicorn.api.deps import ReadConnDep, ReaderDep
from cronicorn.api.errors import ApiError
from cronicorn.schemas.common import InDatetime, Text
from cronicorn.schemas.notify import AuditActor, AuditEntry, AuditPage
from cronicorn.store import audit as audit_store

router = APIRouter(tags=["Audit"])

Entity = Literal["user", "api_key", "signing_key", "job", "endpoint", "channel", "backup"]


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise ApiError(
            422,
            "Invalid cursor (pass nextCursor from the previous page)",
            details=[{"path": "cursor", "in": "query", "message": "invalid cursor"}],
        )
    return int(value)


def entry_out(e: audit_store.Entry) -> AuditEntry:
    return AuditEntry(
        id=str(e.id),
        at=e.at,
        actor=AuditActor(kind=e.actor_kind, id=e.actor_id, name=e.actor_name),
        action=e.action,
        entity=e.entity,
        entity_id=e.entity_id,
        changes=e.changes,
        request_id=e.request_id,
    )


@router.get("/audit", response_model=AuditPage, summary="Who changed what, newest first")
async def list_audit(
    user: ReaderDep,
    conn: ReadConnDep,
    entity: Entity | None = None,
    entity_id: Annotated[Text | None, Query(alias="entityId", max_length=200)] = None,
    actor: Annotated[Text | None, Query(max_length=200)] = None,
    action: Literal["create", "update", "delete"] | None = None,
    since: InDatetime | None = None,
    until: InDatetime | None = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    filters = audit_store.Filters(
        owner=None if user.is_admin else user.user_id,
        entity=entity,
        entity_id=entity_id,
        actor=actor,
        since=since,
        until=until,
        action=action,
    )
    rows = await audit_store.list_entries(conn, filters, before_id=_cursor(cursor), limit=limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    return AuditPage(
        entries=[entry_out(e) for e in page],
        next_cursor=str(page[-1].id) if more and page else None,
    )
