"""Who is calling: turns a session token, bearer token or API key into an identity.

This is the only place that reads credential tables for authentication; `api.deps.current_user`
calls it once per request. Sessions slide: a use more than `REFRESH_AFTER` after the last
refresh pushes the expiry to `now + ttl`, so an active user stays signed in while a stolen,
unused token still dies on schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.auth.tokens import hash_token, is_api_key
from cronicorn.store import api_keys, sessions

REFRESH_AFTER = timedelta(hours=1)
KEY_TOUCH_AFTER = timedelta(minutes=1)

Via = Literal["session", "bearer", "api_key"]


@dataclass(frozen=True)
class Identity:
    user_id: str
    is_admin: bool
    via: Via
    credential_id: str
    expires_at: datetime | None = None
    refreshed: bool = False  # the session's expiry moved (the cookie should be re-sent)


async def from_session_token(
    conn: AsyncConnection, token: str, *, via: Via, now: datetime, ttl: timedelta
) -> Identity | None:
    found = await sessions.find_active(conn, hash_token(token), now)
    if found is None:
        return None
    row = found.session
    expires_at, refreshed = row.expires_at, False
    if row.last_seen_at is None or now - row.last_seen_at >= REFRESH_AFTER:
        expires_at, refreshed = now + ttl, True
        await sessions.extend(conn, row.id, now=now, expires_at=expires_at)
    return Identity(row.user_id, found.is_admin, via, row.id, expires_at, refreshed)


async def from_api_key(conn: AsyncConnection, key: str, *, now: datetime) -> Identity | None:
    found = await api_keys.find_active(conn, hash_token(key), now)
    if found is None:
        return None
    row = found.key
    if row.last_used_at is None or now - row.last_used_at >= KEY_TOUCH_AFTER:
        await api_keys.touch(conn, row.id, now)
    return Identity(row.user_id, found.is_admin, "api_key", row.id, row.expires_at)


async def from_bearer(
    conn: AsyncConnection, token: str, *, now: datetime, ttl: timedelta
) -> Identity | None:
    """`Authorization: Bearer` carries an API key (`cron_…`) or a session token."""
    if is_api_key(token):
        return await from_api_key(conn, token, now=now)
    return await from_session_token(conn, token, via="bearer", now=now, ttl=ttl)
