"""`/login` and `/logout`: email and password sign-in (GitHub when configured) with the API's
session cookie, so one sign-in serves the pages and `/api` alike.

The sign-in form is checked for Origin (login CSRF); attempts share the API's per-email and
per-address budget (the same `login:` bucket), counted even when they fail.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.auth import service
from cronicorn.auth.cookies import cleared_cookies, session_cookies
from cronicorn.auth.errors import InvalidCredentials
from cronicorn.auth.github import safe_redirect
from cronicorn.auth.tokens import csrf_token
from cronicorn.store import login_sessions, rate_limits
from cronicorn.store.users import UserRow
from cronicorn.web.deps import (
    ClockDep,
    ConnDep,
    FormDep,
    RuntimeDep,
    ViewerDep,
    find_viewer,
    foreign_origin,
    read_form,
)
from cronicorn.web.templating import render

router = APIRouter()
LOGIN_ATTEMPTS_PER_MINUTE = 10  # as the API's sign-in: per email and client address


def safe_next(value: str | None) -> str:
    """Only a path on this site (never `//evil.example` or a scheme)."""
    return safe_redirect(value)


def _login_page(
    request: Request,
    runtime: RuntimeDep,
    *,
    next_path: str,
    email: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    github = None
    if runtime.settings.github_enabled:
        github = "/api/auth/sign-in/github?" + urlencode({"redirect": next_path})
    return render(
        request,
        "login.html",
        status_code=status,
        next_path=next_path,
        email=email,
        error=error,
        github_url=github,
        title="Sign in",
    )


@router.get("/login")
async def login_page(
    request: Request,
    conn: ConnDep,
    runtime: RuntimeDep,
    clock: ClockDep,
    next: str | None = None,
    error: str | None = None,
) -> Response:
    target = safe_next(next)
    if await find_viewer(request, conn, runtime, clock()) is not None:
        return RedirectResponse(target, status_code=303)
    message = "GitHub sign-in failed; try again." if error else None
    return _login_page(request, runtime, next_path=target, error=message)


@router.post("/login")
async def login(request: Request, conn: ConnDep, runtime: RuntimeDep, clock: ClockDep) -> Response:
    form = await read_form(request)
    target, email, now = safe_next(form.get("next")), form.get("email", "")[:320], clock()
    if foreign_origin(request, runtime):
        return _login_page(
            request, runtime, next_path=target, error="Cross-site form refused.", status=403
        )
    if not await attempt_allowed(conn, request, email, now):
        error = "Too many sign-in attempts; wait a minute and try again."
        return _login_page(request, runtime, next_path=target, email=email, error=error, status=429)
    try:
        user = await service.authenticate_password(
            conn, email, form.get("password", "")[:1024], now
        )
    except InvalidCredentials:
        error = "Wrong email or password."
        return _login_page(request, runtime, next_path=target, email=email, error=error, status=401)
    response = RedirectResponse(target, status_code=303)
    for value in await start_session(conn, request, runtime, user, now):
        response.headers.append("set-cookie", value)
    return response


async def attempt_allowed(
    conn: AsyncConnection, request: Request, email: str, now: datetime
) -> bool:
    """Count this attempt (committed at once, so failures count too)."""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]
    ip = request.client.host if request.client else "unknown"
    count = await rate_limits.hit(conn, f"login:{digest}:{ip}", rate_limits.window_start(now))
    await conn.commit()
    return count <= LOGIN_ATTEMPTS_PER_MINUTE


async def start_session(
    conn: AsyncConnection, request: Request, runtime: RuntimeDep, user: UserRow, now: datetime
) -> list[str]:
    token, row = await service.start_session(
        conn,
        user.id,
        kind="browser",
        now=now,
        ttl=timedelta(days=runtime.settings.session_ttl_days),
        user_agent=request.headers.get("user-agent"),
        ip_address=request.client.host if request.client else None,
    )
    csrf = csrf_token(runtime.auth_secret, token)
    return session_cookies(runtime.settings, token, csrf, row.expires_at, now)


@router.post("/logout")
async def logout(
    viewer: ViewerDep, _form: FormDep, conn: ConnDep, runtime: RuntimeDep, clock: ClockDep
) -> Response:
    await login_sessions.revoke(conn, viewer.user_id, viewer.session_id, clock())
    response = RedirectResponse("/login", status_code=303)
    for value in cleared_cookies(runtime.settings):
        response.headers.append("set-cookie", value)
    return response
