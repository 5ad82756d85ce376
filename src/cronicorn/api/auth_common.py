"""Pieces the sign-in routes share: the user's JSON, starting a browser session with its
cookies, client addresses, and the brute-force limiter for unauthenticated auth routes."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.api.cookies import session_cookies
from cronicorn.api.errors import ApiError
from cronicorn.api.ratelimit import limiter_for
from cronicorn.auth.service import start_session
from cronicorn.auth.tokens import csrf_token
from cronicorn.runtime import Runtime
from cronicorn.schemas.accounts import UserView
from cronicorn.schemas.common import iso_ms
from cronicorn.store.login_sessions import SessionRow
from cronicorn.store.users import UserRow

LOGIN_ATTEMPTS_PER_MINUTE = 10  # per email and client address
ANONYMOUS_CALLS_PER_MINUTE = 30  # per client address (device codes, sign-up)


def user_json(user: UserRow) -> dict[str, Any]:
    """The user's view (`schemas.accounts.UserView`) as JSON, for bodies built by hand."""
    return UserView.of(user).model_dump(mode="json", by_alias=True)


def session_json(row: SessionRow, *, current: bool = False) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "userAgent": row.user_agent,
        "ipAddress": row.ip_address,
        "createdAt": iso_ms(row.created_at),
        "lastSeenAt": iso_ms(row.last_seen_at) if row.last_seen_at else None,
        "expiresAt": iso_ms(row.expires_at),
        "current": current,
    }


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def session_ttl(runtime: Runtime) -> timedelta:
    return timedelta(days=runtime.settings.session_ttl_days)


async def open_browser_session(
    conn: AsyncConnection,
    request: Request,
    runtime: Runtime,
    user: UserRow,
    now: datetime,
) -> tuple[list[str], dict[str, Any]]:
    """Start a browser session: (Set-Cookie values, the JSON the sign-in routes answer)."""
    token, row = await start_session(
        conn,
        user.id,
        kind="browser",
        now=now,
        ttl=session_ttl(runtime),
        user_agent=request.headers.get("user-agent"),
        ip_address=client_ip(request),
    )
    csrf = csrf_token(runtime.auth_secret, token)
    cookies = session_cookies(runtime.settings, token, csrf, row.expires_at, now)
    body = {"user": user_json(user), "session": session_json(row, current=True), "csrfToken": csrf}
    return cookies, body


def with_cookies(response: Response, cookies: list[str]) -> Response:
    for value in cookies:
        response.headers.append("set-cookie", value)
    return response


def json_with_cookies(body: Any, cookies: list[str], status: int = 200) -> JSONResponse:
    response = JSONResponse(body, status_code=status)
    with_cookies(response, cookies)
    return response


async def throttle(
    conn: AsyncConnection, request: Request, bucket: str, limit: int, now: datetime
) -> None:
    """Count an unauthenticated attempt (committed at once, so failures count too)."""
    verdict = await limiter_for(request).check(conn, bucket, limit, now)
    await conn.commit()
    if not verdict.allowed:
        raise ApiError(
            429,
            f"Too many attempts; retry in {verdict.reset_s} s",
            details={"retryAfter": verdict.reset_s},
            headers=verdict.headers(),
        )


def login_bucket(email: str, ip: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]
    return f"login:{digest}:{ip}"
