"""Login sessions (browser cookies and device-flow bearer tokens). Only token hashes are
stored; every query that a user can trigger is scoped by `user_id`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import RowMapping, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.ids import new_id
from cronicorn.store.credential_cache import announce
from cronicorn.store.tables import sessions, users

SessionKind = Literal["browser", "device"]


@dataclass(frozen=True)
class SessionRow:
    id: str
    user_id: str
    kind: str
    user_agent: str | None
    ip_address: str | None
    created_at: datetime
    last_seen_at: datetime | None
    expires_at: datetime


@dataclass(frozen=True)
class ActiveSession:
    """A live session joined with its (enabled) user: what authentication needs."""

    session: SessionRow
    email: str
    name: str
    is_admin: bool


def _session(m: RowMapping) -> SessionRow:
    return SessionRow(
        id=m["id"],
        user_id=m["user_id"],
        kind=m["kind"],
        user_agent=m["user_agent"],
        ip_address=m["ip_address"],
        created_at=m["created_at"],
        last_seen_at=m["last_seen_at"],
        expires_at=m["expires_at"],
    )


async def create(
    conn: AsyncConnection,
    *,
    user_id: str,
    token_hash: str,
    kind: SessionKind,
    expires_at: datetime,
    now: datetime,
    user_agent: str | None = None,
    ip_address: str | None = None,
) -> SessionRow:
    row = (
        await conn.execute(
            insert(sessions)
            .values(
                id=new_id(),
                user_id=user_id,
                token_hash=token_hash,
                kind=kind,
                user_agent=user_agent,
                ip_address=ip_address,
                created_at=now,
                last_seen_at=now,
                expires_at=expires_at,
            )
            .returning(sessions)
        )
    ).one()
    return _session(row._mapping)


# Built once: every page and API request with a session cookie runs it.
_FIND_ACTIVE = (
    select(sessions, users.c.email, users.c.name, users.c.is_admin)
    .join(users, users.c.id == sessions.c.user_id)
    .where(
        sessions.c.token_hash == bindparam("token_hash"),
        sessions.c.revoked_at.is_(None),
        sessions.c.expires_at > bindparam("now"),
        users.c.disabled_at.is_(None),
    )
)


async def find_active(
    conn: AsyncConnection, token_hash: str, now: datetime
) -> ActiveSession | None:
    """The session for this token if it is unexpired, unrevoked and its user is enabled."""
    row = (await conn.execute(_FIND_ACTIVE, {"token_hash": token_hash, "now": now})).first()
    if row is None:
        return None
    m = row._mapping
    return ActiveSession(_session(m), email=m["email"], name=m["name"], is_admin=m["is_admin"])


async def extend(
    conn: AsyncConnection, session_id: str, *, now: datetime, expires_at: datetime
) -> None:
    """Sliding refresh: mark the session seen and push its expiry out."""
    await conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        .values(last_seen_at=now, expires_at=expires_at)
    )


async def list_for_user(conn: AsyncConnection, user_id: str, now: datetime) -> list[SessionRow]:
    """The user's live sessions, newest first (never their tokens)."""
    stmt = (
        select(sessions)
        .where(
            sessions.c.user_id == user_id,
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > now,
        )
        .order_by(sessions.c.created_at.desc(), sessions.c.id.desc())
    )
    return [_session(row._mapping) for row in await conn.execute(stmt)]


async def revoke(conn: AsyncConnection, user_id: str, session_id: str, now: datetime) -> bool:
    """Revoke one of the user's live sessions; False if there is none with that id."""
    result = await conn.execute(
        update(sessions)
        .where(
            sessions.c.id == session_id,
            sessions.c.user_id == user_id,
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > now,
        )
        .values(revoked_at=now)
        .returning(sessions.c.id)
    )
    await announce(conn)  # every API process drops its cached credentials at commit
    return result.first() is not None


async def revoke_by_token(conn: AsyncConnection, token_hash: str, now: datetime) -> None:
    await conn.execute(
        update(sessions)
        .where(sessions.c.token_hash == token_hash, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await announce(conn)


async def revoke_all_for_user(
    conn: AsyncConnection, user_id: str, now: datetime, *, except_id: str | None = None
) -> int:
    """Revoke every live session of the user (but `except_id`); returns how many."""
    stmt = update(sessions).where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
    if except_id is not None:
        stmt = stmt.where(sessions.c.id != except_id)
    result = await conn.execute(stmt.values(revoked_at=now).returning(sessions.c.id))
    await announce(conn)
    return len(result.all())
