"""The authentication gate's database work as ONE statement per request.

Looks the credential up (joined with its enabled user) and bumps its rate-limit counter in
the same round trip. With `async_commit` (the statement is its own transaction) it also sets
`synchronous_commit = off` for that transaction: the counter, `last_used_at` and the sliding
session expiry are worth nothing after a crash, so committing them need not wait for the WAL
flush. That keeps the counter row's lock (every request of one credential updates the same
row) short, and roughly doubles the gate's throughput on one hot credential. A miss (unknown,
revoked, expired, disabled) counts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

Access = Literal["read", "write"]

_KEY_HIT = text(
    """
    WITH k AS (
        SELECT k.id, k.user_id, k.expires_at, k.last_used_at, u.is_admin
        FROM api_keys k JOIN users u ON u.id = k.user_id
        WHERE k.key_hash = :hash AND k.revoked_at IS NULL
          AND (k.expires_at IS NULL OR k.expires_at > :now) AND u.disabled_at IS NULL
    ), hit AS (
        INSERT INTO rate_limits AS r (bucket, window_start, count)
        SELECT 'key:' || k.id || ':' || :access, :window_start, 1 FROM k
        ON CONFLICT (bucket, window_start) DO UPDATE SET count = r.count + 1
        RETURNING r.count
    )
    SELECT k.id, k.user_id, k.expires_at, k.last_used_at, k.is_admin,
           (SELECT count FROM hit) AS count,
           CASE WHEN :async_commit THEN set_config('synchronous_commit', 'off', true) END
               AS async_commit
    FROM k
    """
)

_SESSION_HIT = text(
    """
    WITH s AS (
        SELECT s.id, s.user_id, s.expires_at, s.last_seen_at, u.is_admin
        FROM sessions s JOIN users u ON u.id = s.user_id
        WHERE s.token_hash = :hash AND s.revoked_at IS NULL
          AND s.expires_at > :now AND u.disabled_at IS NULL
    ), hit AS (
        INSERT INTO rate_limits AS r (bucket, window_start, count)
        SELECT 'user:' || s.user_id || ':' || :access, :window_start, 1 FROM s
        ON CONFLICT (bucket, window_start) DO UPDATE SET count = r.count + 1
        RETURNING r.count
    )
    SELECT s.id, s.user_id, s.expires_at, s.last_seen_at, s.is_admin,
           (SELECT count FROM hit) AS count,
           CASE WHEN :async_commit THEN set_config('synchronous_commit', 'off', true) END
               AS async_commit
    FROM s
    """
)


@dataclass(frozen=True)
class Hit:
    """A live credential and its rate-limit count in this window (this request included)."""

    credential_id: str
    user_id: str
    is_admin: bool
    expires_at: datetime | None
    last_used_at: datetime | None  # API key: last_used_at; session: last_seen_at
    count: int


async def _hit(
    conn: AsyncConnection,
    stmt: TextClause,
    token_hash: str,
    access: Access,
    now: datetime,
    window_start: datetime,
    async_commit: bool,
) -> Hit | None:
    params = {
        "hash": token_hash,
        "now": now,
        "access": access,
        "window_start": window_start,
        "async_commit": async_commit,
    }
    row = (await conn.execute(stmt, params)).first()
    if row is None:
        return None
    m = row._mapping
    return Hit(m["id"], m["user_id"], m["is_admin"], m["expires_at"], row[3], int(m["count"]))


async def api_key_hit(
    conn: AsyncConnection,
    key_hash: str,
    access: Access,
    now: datetime,
    window_start: datetime,
    *,
    async_commit: bool = True,
) -> Hit | None:
    """The key's owner and the key's count (each API key has its own budget)."""
    return await _hit(conn, _KEY_HIT, key_hash, access, now, window_start, async_commit)


async def session_hit(
    conn: AsyncConnection,
    token_hash: str,
    access: Access,
    now: datetime,
    window_start: datetime,
    *,
    async_commit: bool = True,
) -> Hit | None:
    """The session's user and the user's count (browser and device sessions share it)."""
    return await _hit(conn, _SESSION_HIT, token_hash, access, now, window_start, async_commit)
