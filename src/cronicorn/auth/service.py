"""Accounts: users, password sign-in, sessions and API keys. The API routes and the CLI both
call these functions, so a rule (password length, unique email, disabled users) lives once.

Functions take an open connection and `now`, and commit nothing themselves: the caller owns
the transaction. Secrets (session tokens, API keys) are returned once and only their hashes
are stored.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cronicorn.auth.errors import (
    ApiKeyNotFound,
    InvalidCredentials,
    InvalidInput,
    UserExists,
    UserNotFound,
)
from cronicorn.auth.passwords import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    needs_rehash,
    verify_password,
)
from cronicorn.auth.tokens import hash_token, new_api_key, new_session_token, shown_prefix
from cronicorn.store import api_keys, login_sessions, users
from cronicorn.store.api_keys import ApiKeyRow
from cronicorn.store.login_sessions import SessionKind, SessionRow
from cronicorn.store.users import UserRow

MAX_PASSWORD_LENGTH = 1024
MAX_NAME_LENGTH = 200
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so a wrong email costs as much as a wrong
    password and response times do not reveal which accounts exist. Made on first use: an
    argon2 hash at import would slow every CLI command."""
    return hash_password("cronicorn-dummy-password")


def normalize_email(email: str) -> str:
    value = email.strip()
    if len(value) > 320 or not _EMAIL.match(value):
        raise InvalidInput("email", f"not an email address: {email!r}")
    return value


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            "password", f"password must be at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput("password", f"password must be at most {MAX_PASSWORD_LENGTH} characters")


async def create_user(
    conn: AsyncConnection,
    *,
    email: str,
    password: str | None,
    name: str | None = None,
    is_admin: bool = False,
) -> UserRow:
    """A new user; `password=None` makes one that signs in by GitHub or API key only."""
    email = normalize_email(email)
    if password is not None:
        check_password(password)
    display = (name or "").strip() or email.split("@", 1)[0]
    if len(display) > MAX_NAME_LENGTH:
        raise InvalidInput("name", f"name must be at most {MAX_NAME_LENGTH} characters")
    if await users.get_by_email(conn, email) is not None:
        raise UserExists(email)
    try:
        async with conn.begin_nested():
            return await users.create(
                conn,
                email=email,
                name=display,
                password_hash=hash_password(password) if password is not None else None,
                is_admin=is_admin,
            )
    except IntegrityError:  # a concurrent create won the race
        raise UserExists(email) from None


async def authenticate_password(
    conn: AsyncConnection, email: str, password: str, now: datetime
) -> UserRow:
    """The enabled user with this email and password, else `InvalidCredentials` (one error
    for unknown email, wrong password and disabled user, at the same cost)."""
    user = await users.get_by_email(conn, email.strip())
    stored = user.password_hash if user is not None and user.password_hash else _dummy_hash()
    ok = verify_password(stored, password)
    if user is None or not user.password_hash or not ok or user.disabled_at is not None:
        raise InvalidCredentials
    if needs_rehash(user.password_hash):
        await users.set_password_hash(conn, user.id, hash_password(password), now)
    return user


async def change_password(
    conn: AsyncConnection,
    user_id: str,
    *,
    current: str,
    new: str,
    now: datetime,
    keep_session: str | None = None,
) -> int:
    """Replace the user's password after checking the current one, and sign out every
    other session (browser and device; API keys stay). Returns the sessions revoked."""
    user = await users.get_by_id(conn, user_id)
    if user is None or not user.password_hash:
        raise InvalidInput("currentPassword", "this account has no password to change")
    if not verify_password(user.password_hash, current):
        raise InvalidCredentials
    try:
        check_password(new)
    except InvalidInput as exc:
        raise InvalidInput("newPassword", str(exc)) from None
    await users.set_password_hash(conn, user.id, hash_password(new), now)
    return await login_sessions.revoke_all_for_user(conn, user.id, now, except_id=keep_session)


async def reset_password(conn: AsyncConnection, email: str, password: str, now: datetime) -> int:
    """Operator reset: set a new password and sign out every session of the user."""
    check_password(password)
    user = await user_by_email(conn, email)
    await users.set_password_hash(conn, user.id, hash_password(password), now)
    return await login_sessions.revoke_all_for_user(conn, user.id, now)


async def start_session(
    conn: AsyncConnection,
    user_id: str,
    *,
    kind: SessionKind,
    now: datetime,
    ttl: timedelta,
    user_agent: str | None = None,
    ip_address: str | None = None,
) -> tuple[str, SessionRow]:
    """A new session; returns its token (shown once) and the stored row."""
    token = new_session_token()
    row = await login_sessions.create(
        conn,
        user_id=user_id,
        token_hash=hash_token(token),
        kind=kind,
        expires_at=now + ttl,
        now=now,
        user_agent=(user_agent or "")[:500] or None,
        ip_address=ip_address,
    )
    return token, row


async def issue_api_key(
    conn: AsyncConnection,
    user_id: str,
    *,
    name: str,
    now: datetime,
    expires_in: timedelta | None = None,
) -> tuple[str, ApiKeyRow]:
    """A new API key `cron_…`; returns the key (shown once) and the stored row."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput("name", f"key name must be 1 to {MAX_NAME_LENGTH} characters")
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidInput("expiresIn", "expiresIn must be positive")
    key = new_api_key()
    row = await api_keys.create(
        conn,
        user_id=user_id,
        name=name,
        prefix=shown_prefix(key),
        key_hash=hash_token(key),
        now=now,
        expires_at=now + expires_in if expires_in is not None else None,
    )
    return key, row


async def revoke_api_key(
    conn: AsyncConnection, key_id: str, now: datetime, *, user_id: str | None
) -> ApiKeyRow:
    row = await api_keys.revoke(conn, key_id, now, user_id=user_id)
    if row is None:
        raise ApiKeyNotFound(key_id)
    return row


async def user_by_email(conn: AsyncConnection, email: str) -> UserRow:
    user = await users.get_by_email(conn, email.strip())
    if user is None:
        raise UserNotFound(f"with email {email}")
    return user


async def set_disabled(
    conn: AsyncConnection, user_id: str, *, disabled: bool, now: datetime
) -> UserRow:
    """Disable (every session and key stops at once: authentication checks the user) or
    re-enable a user. Disabling also revokes the sessions, so re-enabling needs a new login."""
    row = await users.set_disabled(conn, user_id, now if disabled else None, now)
    if row is None:
        raise UserNotFound(user_id)
    if disabled:
        await login_sessions.revoke_all_for_user(conn, user_id, now)
    return row


async def create_user_with_api_key(
    engine: AsyncEngine,
    email: str,
    *,
    is_admin: bool = False,
    password: str | None = None,
    now: datetime | None = None,
) -> tuple[str, str]:
    """(user id, API key) for a new user, through the real code path (tests and tools).

    Send the key as `x-api-key: <key>` or `Authorization: Bearer <key>`.
    """
    async with engine.begin() as conn:
        user = await create_user(conn, email=email, password=password, is_admin=is_admin)
        stamp = now or datetime.now(UTC)
        key, _ = await issue_api_key(conn, user.id, name="default", now=stamp)
    return user.id, key
