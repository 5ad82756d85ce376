"""Outbound signing keys: one current key per user (`retire_at IS NULL`) plus the keys a
rotation retired that still sign until their `retire_at` (grace period; the reference
invalidated the old key at once). Keys are stored encrypted; callers pass ciphertext in and
`load_signing_keys` hands the scheduler plaintext out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.ids import new_id
from cronicorn.store.errors import Conflict, NotFound
from cronicorn.store.tables import signing_keys


@dataclass(frozen=True)
class KeyInfo:
    id: str
    key_prefix: str
    created_at: datetime
    rotated_at: datetime | None
    retire_at: datetime | None


def _live(now: datetime) -> ColumnElement[bool]:
    return or_(signing_keys.c.retire_at.is_(None), signing_keys.c.retire_at > now)


async def list_live(conn: AsyncConnection, user_id: str, now: datetime) -> list[KeyInfo]:
    """The user's keys that still sign: the current one first, then those in grace."""
    rows = await conn.execute(
        select(
            signing_keys.c.id,
            signing_keys.c.key_prefix,
            signing_keys.c.created_at,
            signing_keys.c.rotated_at,
            signing_keys.c.retire_at,
        )
        .where(signing_keys.c.user_id == user_id, _live(now))
        .order_by(signing_keys.c.retire_at.desc().nulls_first(), signing_keys.c.created_at.desc())
    )
    return [KeyInfo(*r) for r in rows]


async def create(
    conn: AsyncConnection, user_id: str, *, encrypted: bytes, prefix: str, now: datetime
) -> KeyInfo:
    """The user's first key; `Conflict` if one exists (also under a concurrent create)."""
    existing = await conn.scalar(
        select(signing_keys.c.id).where(
            signing_keys.c.user_id == user_id, signing_keys.c.retire_at.is_(None)
        )
    )
    if existing is not None:
        raise Conflict(
            "Signing key already exists; use POST /api/signing-keys/rotate to replace it"
        )
    try:
        async with conn.begin_nested():
            return await _insert(conn, user_id, encrypted, prefix, now, rotated=False)
    except IntegrityError:
        raise Conflict("Signing key already exists") from None


async def rotate(
    conn: AsyncConnection,
    user_id: str,
    *,
    encrypted: bytes,
    prefix: str,
    now: datetime,
    grace: timedelta,
) -> tuple[KeyInfo, datetime]:
    """Replace the current key; the old one keeps signing until now + grace. Returns the new
    key and the old key's retire time. `NotFound` if the user has no key."""
    current = await conn.scalar(
        select(signing_keys.c.id)
        .where(signing_keys.c.user_id == user_id, signing_keys.c.retire_at.is_(None))
        .with_for_update()
    )
    if current is None:
        raise NotFound("Signing key")
    retire_at = now + grace
    await conn.execute(
        update(signing_keys).where(signing_keys.c.id == current).values(retire_at=retire_at)
    )
    await conn.execute(
        delete(signing_keys).where(
            signing_keys.c.user_id == user_id, signing_keys.c.retire_at <= now
        )
    )
    key = await _insert(conn, user_id, encrypted, prefix, now, rotated=True)
    return key, retire_at


async def _insert(
    conn: AsyncConnection,
    user_id: str,
    encrypted: bytes,
    prefix: str,
    now: datetime,
    *,
    rotated: bool,
) -> KeyInfo:
    key_id = new_id()
    await conn.execute(
        insert(signing_keys).values(
            id=key_id,
            user_id=user_id,
            key_encrypted=encrypted,
            key_prefix=prefix,
            created_at=now,
            rotated_at=now if rotated else None,
        )
    )
    return KeyInfo(key_id, prefix, now, now if rotated else None, None)


Decrypt = Callable[[bytes, str], bytes]


async def load_signing_keys(
    conn: AsyncConnection,
    user_ids: Sequence[str],
    now: datetime,
    auth_secret: str,
    *,
    decrypt: Decrypt | None = None,
) -> dict[str, list[bytes]]:
    """For a batch of users, the keys that sign now: current key first, then keys still in
    their grace period (newest first). Users without keys are absent. One query per batch."""
    if not user_ids:
        return {}
    if decrypt is None:
        decrypt = _default_decrypt()
    rows = await conn.execute(
        select(signing_keys.c.user_id, signing_keys.c.key_encrypted)
        .where(signing_keys.c.user_id.in_(sorted(set(user_ids))), _live(now))
        .order_by(
            signing_keys.c.user_id,
            signing_keys.c.retire_at.desc().nulls_first(),
            signing_keys.c.created_at.desc(),
        )
    )
    keys: dict[str, list[bytes]] = {}
    for user_id, encrypted in rows:
        keys.setdefault(user_id, []).append(decrypt(bytes(encrypted), auth_secret))
    return keys


def _default_decrypt() -> Decrypt:
    """The dispatcher's key decryption (imported late: `store` does not depend on `dispatch`
    at import time)."""
    from cronicorn.dispatch.signing import decrypt_signing_key

    return decrypt_signing_key
