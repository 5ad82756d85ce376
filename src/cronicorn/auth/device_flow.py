"""OAuth 2.0 device authorization grant (RFC 8628) for the CLI and MCP clients.

A client asks for a code pair, the user approves the short code in a browser session, and the
client's polling turns the approval into a long-lived device session (kind='device') that the
user can list and revoke like any other session. Polling faster than the interval answers
`slow_down` and widens the interval by 5 s (RFC 8628 §3.5); a used, denied or unknown code is
refused, so a device code can be exchanged at most once.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.auth.errors import DeviceFlowError
from cronicorn.auth.service import start_session
from cronicorn.auth.tokens import hash_token
from cronicorn.store import device_codes
from cronicorn.store.device_codes import DeviceCodeRow

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
CODE_LIFETIME = timedelta(minutes=30)
INTERVAL_S = 5
SLOW_DOWN_STEP_S = 5
MAX_CLIENT_ID = 200
# No vowels (no words), no look-alikes (0/O, 1/I/L): RFC 8628 §6.1.
USER_CODE_ALPHABET = "BCDFGHJKMNPQRSTVWXZ"


@dataclass(frozen=True)
class CodePair:
    device_code: str
    user_code: str
    expires_in: int
    interval: int


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str | None


def _new_user_code() -> str:
    chars = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


def normalize_user_code(raw: str) -> str:
    """What the user typed → the stored form (`abcd efgh` → `ABCD-EFGH`)."""
    chars = re.sub(r"[^A-Za-z]", "", raw).upper()
    return f"{chars[:4]}-{chars[4:]}" if len(chars) == 8 else chars


async def request_codes(
    conn: AsyncConnection, *, client_id: str, scope: str | None, now: datetime
) -> CodePair:
    client_id = client_id.strip()
    if not client_id or len(client_id) > MAX_CLIENT_ID:
        raise DeviceFlowError("invalid_client", "client_id is required (at most 200 characters)")
    device_code = secrets.token_urlsafe(32)
    for _ in range(5):  # user codes have ~34 bits; a clash is rare, retry it anyway
        try:
            async with conn.begin_nested():
                await device_codes.create(
                    conn,
                    device_code_hash=hash_token(device_code),
                    user_code=_new_user_code(),
                    client_id=client_id,
                    scope=scope,
                    interval_s=INTERVAL_S,
                    now=now,
                    expires_at=now + CODE_LIFETIME,
                )
            break
        except IntegrityError:
            continue
    row = await device_codes.lock_by_device_code(conn, hash_token(device_code))
    assert row is not None
    return CodePair(device_code, row.user_code, int(CODE_LIFETIME.total_seconds()), INTERVAL_S)


async def exchange(
    conn: AsyncConnection,
    *,
    grant_type: str,
    device_code: str,
    client_id: str,
    now: datetime,
    ttl: timedelta,
) -> IssuedToken:
    """One poll of the token endpoint: a token, or the RFC 8628 error to answer with."""
    if grant_type != GRANT_TYPE:
        raise DeviceFlowError("unsupported_grant_type", f"grant_type must be {GRANT_TYPE}")
    row = await device_codes.lock_by_device_code(conn, hash_token(device_code))
    if row is None or row.client_id != client_id:
        raise DeviceFlowError("invalid_grant", "Unknown device_code for this client_id")
    if row.status == "consumed":
        raise DeviceFlowError("invalid_grant", "This device_code was already used")
    if row.expires_at <= now:
        raise DeviceFlowError("expired_token", "The device_code expired; request a new one")
    if row.status == "denied":
        raise DeviceFlowError("access_denied", "The user denied the request")
    if row.status == "pending":
        await _pending_poll(conn, row, now)
    if row.user_id is None or not await device_codes.consume(conn, row.id):
        raise DeviceFlowError("invalid_grant", "This device_code cannot be used")
    token, _ = await start_session(
        conn, row.user_id, kind="device", now=now, ttl=ttl, user_agent=row.client_id
    )
    return IssuedToken(token, int(ttl.total_seconds()), row.scope)


async def _pending_poll(conn: AsyncConnection, row: DeviceCodeRow, now: datetime) -> None:
    """Record the poll and raise: `slow_down` if too soon, else `authorization_pending`."""
    too_soon = row.last_polled_at is not None and now - row.last_polled_at < timedelta(
        seconds=row.interval_s
    )
    interval = row.interval_s + SLOW_DOWN_STEP_S if too_soon else row.interval_s
    await device_codes.record_poll(conn, row.id, now, interval)
    if too_soon:
        raise DeviceFlowError("slow_down", f"Polling too fast: wait {interval} s between polls")
    raise DeviceFlowError("authorization_pending", "The user has not approved the request yet")


async def lookup(conn: AsyncConnection, user_code: str, now: datetime) -> DeviceCodeRow | None:
    """The pending, unexpired code the approval page shows; None otherwise."""
    row = await device_codes.by_user_code(conn, normalize_user_code(user_code))
    if row is None or row.status != "pending" or row.expires_at <= now:
        return None
    return row


async def decide(
    conn: AsyncConnection, user_code: str, *, user_id: str, approve: bool, now: datetime
) -> DeviceCodeRow | None:
    return await device_codes.decide(
        conn,
        normalize_user_code(user_code),
        user_id=user_id,
        status="approved" if approve else "denied",
        now=now,
    )
