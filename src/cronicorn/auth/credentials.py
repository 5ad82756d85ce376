"""Who is calling: turns a session token, bearer token or API key into an identity, and
counts the request against the credential's rate-limit window in the same statement
(`store.auth_gate`).

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
from cronicorn.store import api_keys, auth_gate, login_sessions
from cronicorn.store.auth_gate import Access
from cronicorn.store.rate_limits import window_start

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
    count: int = 0  # requests in this rate-limit window, this one included
    # a login session's user, read with it (pages show them without another statement)
    email: str | None = None
    name: str | None = None


async def authenticate(
    conn: AsyncConnection,
    secret: str,
    *,
    via: Via,
    access: Access,
    now: datetime,
    ttl: timedelta,
    async_commit: bool = True,
) -> Identity | None:
    """The identity behind `secret` (sent as `via`) and its window count, or None.

    A Bearer value starting `cron_` is an API key; any other is a session token.
    `async_commit=False` when the caller's transaction holds other writes.
    """
    window = window_start(now)
    if via == "api_key" or (via == "bearer" and is_api_key(secret)):
        key = await auth_gate.api_key_hit(
            conn, hash_token(secret), access, now, window, async_commit=async_commit
        )
        if key is None:
            return None
        if key.last_used_at is None or now - key.last_used_at >= KEY_TOUCH_AFTER:
            await api_keys.touch(conn, key.credential_id, now)
        return Identity(
            key.user_id,
            key.is_admin,
            "api_key",
            key.credential_id,
            key.expires_at,
            False,
            key.count,
        )
    hit = await auth_gate.session_hit(
        conn, hash_token(secret), access, now, window, async_commit=async_commit
    )
    if hit is None or hit.expires_at is None:
        return None
    expires_at, refreshed = await _slide(
        conn, hit.credential_id, hit.last_used_at, hit.expires_at, now, ttl
    )
    return Identity(
        hit.user_id, hit.is_admin, via, hit.credential_id, expires_at, refreshed, hit.count
    )


async def from_session_token(
    conn: AsyncConnection, token: str, *, via: Via, now: datetime, ttl: timedelta
) -> Identity | None:
    """A session's identity without counting the request (server-rendered pages)."""
    found = await login_sessions.find_active(conn, hash_token(token), now)
    if found is None:
        return None
    row = found.session
    expires_at, refreshed = await _slide(conn, row.id, row.last_seen_at, row.expires_at, now, ttl)
    return Identity(
        row.user_id,
        found.is_admin,
        via,
        row.id,
        expires_at,
        refreshed,
        email=found.email,
        name=found.name,
    )


async def _slide(
    conn: AsyncConnection,
    session_id: str,
    last_seen_at: datetime | None,
    expires_at: datetime,
    now: datetime,
    ttl: timedelta,
) -> tuple[datetime, bool]:
    if last_seen_at is not None and now - last_seen_at < REFRESH_AFTER:
        return expires_at, False
    await login_sessions.extend(conn, session_id, now=now, expires_at=now + ttl)
    return now + ttl, True
