"""API keys: SHA-256 hashes plus a short shown prefix; the key itself is never stored.
Every query a user can trigger is scoped by `user_id`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.ids import new_id
from cronicorn.store.credential_cache import announce
from cronicorn.store.tables import api_keys, users


@dataclass(frozen=True)
class ApiKeyRow:
    id: str
    user_id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class ActiveKey:
    """A usable key joined with its (enabled) user."""

    key: ApiKeyRow
    is_admin: bool


def _key(m: RowMapping) -> ApiKeyRow:
    return ApiKeyRow(
        id=m["id"],
        user_id=m["user_id"],
        name=m["name"],
        prefix=m["prefix"],
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
    )


async def create(
    conn: AsyncConnection,
    *,
    user_id: str,
    name: str,
    prefix: str,
    key_hash: str,
    now: datetime,
    expires_at: datetime | None = None,
) -> ApiKeyRow:
    row = (
        await conn.execute(
            insert(api_keys)
            .values(
                id=new_id(),
                user_id=user_id,
                name=name,
                prefix=prefix,
                key_hash=key_hash,
                created_at=now,
                expires_at=expires_at,
            )
            .returning(api_keys)
        )
    ).one()
    return _key(row._mapping)


async def find_active(conn: AsyncConnection, key_hash: str, now: datetime) -> ActiveKey | None:
    """The key with this hash if unrevoked, unexpired and its user enabled."""
    stmt = (
        select(api_keys, users.c.is_admin)
        .join(users, users.c.id == api_keys.c.user_id)
        .where(
            api_keys.c.key_hash == key_hash,
            api_keys.c.revoked_at.is_(None),
            (api_keys.c.expires_at.is_(None)) | (api_keys.c.expires_at > now),
            users.c.disabled_at.is_(None),
        )
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return ActiveKey(_key(row._mapping), is_admin=row._mapping["is_admin"])


async def touch(conn: AsyncConnection, key_id: str, now: datetime) -> None:
    await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))


async def list_for_user(conn: AsyncConnection, user_id: str) -> list[ApiKeyRow]:
    """The user's unrevoked keys (expired ones included, so they can be cleaned up)."""
    stmt = (
        select(api_keys)
        .where(api_keys.c.user_id == user_id, api_keys.c.revoked_at.is_(None))
        .order_by(api_keys.c.created_at.desc(), api_keys.c.id.desc())
    )
    return [_key(row._mapping) for row in await conn.execute(stmt)]


async def revoke(
    conn: AsyncConnection, key_id: str, now: datetime, *, user_id: str | None
) -> ApiKeyRow | None:
    """Revoke a key; scoped to `user_id` unless None (the operator's CLI)."""
    stmt = update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
    if user_id is not None:
        stmt = stmt.where(api_keys.c.user_id == user_id)
    row = (await conn.execute(stmt.values(revoked_at=now).returning(api_keys))).first()
    await announce(conn)  # every API process drops its cached credentials at commit
    return _key(row._mapping) if row is not None else None


async def rename(
    conn: AsyncConnection, key_id: str, name: str, *, user_id: str
) -> ApiKeyRow | None:
    """Rename one of the user's unrevoked keys; None when there is no such key."""
    stmt = (
        update(api_keys)
        .where(
            api_keys.c.id == key_id,
            api_keys.c.user_id == user_id,
            api_keys.c.revoked_at.is_(None),
        )
        .values(name=name)
        .returning(api_keys)
    )
    row = (await conn.execute(stmt)).first()
    return _key(row._mapping) if row is not None else None
