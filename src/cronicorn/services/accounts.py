"""Users and API keys for every face (`/api/users` and `/api/auth/api-key`, the admin and
settings pages, `cronicorn users|apikey`): each operation answers with the one view of a user
(`UserView`) or a key (`ApiKey`), so no face formats a row its own way. The rules themselves
(hashing, disabling signs the user out) stay in `auth.service`; this module names the
operations and refuses what the faces refused alike: a missing user or key is `NotFound`
(mapped once, in `error_table`), an administrator disabling themselves is a `Conflict`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.auth import service as auth
from cronicorn.auth.errors import ApiKeyNotFound, UserNotFound
from cronicorn.schemas.accounts import ApiKey, CreatedApiKey, UserView
from cronicorn.store import api_keys, users
from cronicorn.store.errors import Conflict, NotFound


async def list_users(conn: AsyncConnection) -> list[UserView]:
    """Every user, oldest first (administrators and the operator only: no scoping here)."""
    return [UserView.of(row) for row in await users.list_all(conn)]


async def get_user(conn: AsyncConnection, user_id: str) -> UserView:
    row = await users.get_by_id(conn, user_id)
    if row is None:
        raise NotFound("User")
    return UserView.of(row)


async def set_disabled(
    conn: AsyncConnection, user_id: str, *, disabled: bool, now: datetime, by: str | None
) -> UserView:
    """Disable (sessions and keys stop at once) or re-enable a user. `by` is the acting
    administrator, who may not lock themselves out; None for the operator's CLI."""
    if disabled and user_id == by:
        raise Conflict("You cannot disable your own account")
    try:
        row = await auth.set_disabled(conn, user_id, disabled=disabled, now=now)
    except UserNotFound:
        raise NotFound("User") from None
    return UserView.of(row)


async def list_api_keys(conn: AsyncConnection, user_id: str) -> list[ApiKey]:
    """The user's unrevoked keys, newest first (expired ones included, to clean them up)."""
    return [ApiKey.of(row) for row in await api_keys.list_for_user(conn, user_id)]


async def create_api_key(
    conn: AsyncConnection,
    user_id: str,
    *,
    name: str,
    now: datetime,
    expires_in: timedelta | None = None,
) -> CreatedApiKey:
    """A new key for the user; the answer carries the key itself, the only time it is seen."""
    key, row = await auth.issue_api_key(conn, user_id, name=name, now=now, expires_in=expires_in)
    return CreatedApiKey.issued(key, row)


async def rename_api_key(conn: AsyncConnection, user_id: str, key_id: str, name: str) -> ApiKey:
    row = await api_keys.rename(conn, key_id, name.strip(), user_id=user_id)
    if row is None:
        raise NotFound("API key")
    return ApiKey.of(row)


async def revoke_api_key(conn: AsyncConnection, user_id: str, key_id: str, now: datetime) -> ApiKey:
    """Revoke one of the user's keys (another user's is `NotFound`); it stops at once."""
    try:
        row = await auth.revoke_api_key(conn, key_id, now, user_id=user_id)
    except ApiKeyNotFound:
        raise NotFound("API key") from None
    return ApiKey.of(row)
