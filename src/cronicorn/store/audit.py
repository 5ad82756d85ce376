"""The audit log: who changed what (read side, retention, and naming the actor).

Rows are written by triggers (migration 0009), never by this module, so no code path can
change an audited table without leaving a row. What code contributes is the actor and the
request id of its transaction: `set_actor` puts them in transaction-local settings that the
trigger reads (`set_config(..., true)`: they vanish at COMMIT/ROLLBACK and never leak to the
next user of a pooled connection).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, delete, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.requestid import current_request_id
from cronicorn.store.tables import audit_log

ActorKind = Literal["user", "api_key", "device", "planner", "rule", "system"]
ENTITIES = (
    "user",
    "api_key",
    "signing_key",
    "job",
    "endpoint",
    "channel",
    "backup",
)


@dataclass(frozen=True)
class Actor:
    """Who acts: `id` is the user, API key or device-session id; `user_id` the person behind
    a credential; `name` something a reader recognises (an e-mail, a key's name, "cli")."""

    kind: ActorKind
    id: str | None = None
    name: str | None = None
    user_id: str | None = None

    def to_json(self) -> str:
        body: dict[str, str] = {"kind": self.kind}
        for key, value in (("id", self.id), ("name", self.name), ("userId", self.user_id)):
            if value is not None:
                body[key] = value
        return json.dumps(body, separators=(",", ":"))


SET_ACTOR_SQL = text(
    "SELECT set_config('cronicorn.actor', :actor, true), "
    "set_config('cronicorn.request_id', :request_id, true)"
)


async def set_actor(conn: AsyncConnection, actor: Actor, request_id: str | None = None) -> None:
    """Name the actor (and request: default, the current one) of the current transaction for
    the audit triggers. Call inside the transaction that writes; it opens one if none is."""
    rid = request_id if request_id is not None else current_request_id()
    await conn.execute(SET_ACTOR_SQL, {"actor": actor.to_json(), "request_id": rid or ""})


@dataclass(frozen=True)
class Entry:
    id: int
    at: datetime
    user_id: str | None
    actor_kind: str
    actor_id: str | None
    actor_name: str | None
    action: str
    entity: str
    entity_id: str
    changes: dict[str, Any]
    request_id: str | None


@dataclass(frozen=True)
class Filters:
    """What `GET /api/audit` and `cronicorn audit` filter on. `owner` None: every user's
    entries (admins, operators); `actor` matches the actor's kind, id or name."""

    owner: str | None = None
    entity: str | None = None
    entity_id: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None


async def list_entries(
    conn: AsyncConnection, filters: Filters, *, before_id: int | None, limit: int
) -> list[Entry]:
    """Newest first, at most `limit`, strictly older than the cursor `before_id`."""
    c = audit_log.c
    conditions = []
    if filters.owner is not None:
        conditions.append(c.user_id == filters.owner)
    if filters.entity is not None:
        conditions.append(c.entity == filters.entity)
    if filters.entity_id is not None:
        conditions.append(c.entity_id == filters.entity_id)
    if filters.actor is not None:
        a = filters.actor
        conditions.append(or_(c.actor_kind == a, c.actor_id == a, c.actor_name == a))
    if filters.since is not None:
        conditions.append(c.at >= filters.since)
    if filters.until is not None:
        conditions.append(c.at < filters.until)
    if filters.action is not None:
        conditions.append(c.action == filters.action)
    if before_id is not None:
        conditions.append(c.id < before_id)
    query = select(audit_log).order_by(c.id.desc()).limit(limit)
    if conditions:
        query = query.where(and_(*conditions))
    rows = await conn.execute(query)
    return [Entry(**row._mapping) for row in rows]


async def prune(conn: AsyncConnection, older_than: datetime) -> int:
    """Drop entries older than the retention (AUDIT_RETENTION_DAYS)."""
    result = await conn.execute(delete(audit_log).where(audit_log.c.at < older_than))
    return result.rowcount


def actor_of(via: str, credential_id: str, user_id: str) -> Actor:
    """The actor behind an authenticated request: a browser session is the user, an API key
    is that key, a bearer session token is a device session (CLI, MCP client)."""
    if via == "api_key":
        return Actor("api_key", id=credential_id, user_id=user_id)
    if via == "bearer":
        return Actor("device", id=credential_id, user_id=user_id)
    return Actor("user", id=user_id, user_id=user_id)
