"""The session and CSRF cookies: names and attributes in one place, for the API and the web
pages alike (one sign-in serves both).

Session cookie: HttpOnly, SameSite=Lax, Secure outside development, Path=/, Max-Age = the
session's remaining lifetime. CSRF cookie: the same but readable by the page's script, which
echoes it in `X-CSRF-Token` on writes (signed double submit, see `auth.tokens.csrf_token`).
"""

from __future__ import annotations

from datetime import datetime
from http.cookies import SimpleCookie

from starlette.requests import Request

from cronicorn.config import Settings

SESSION_COOKIE = "cronicorn_session"
CSRF_COOKIE = "cronicorn_csrf"
CSRF_HEADER = "x-csrf-token"


def _cookie(name: str, value: str, max_age: int, *, http_only: bool, secure: bool) -> str:
    jar: SimpleCookie = SimpleCookie()
    jar[name] = value
    morsel = jar[name]
    morsel["path"] = "/"
    morsel["max-age"] = max(0, max_age)
    morsel["samesite"] = "Lax"
    morsel["httponly"] = http_only
    morsel["secure"] = secure
    return morsel.OutputString()


def session_cookie_attributes(settings: Settings, name: str, value: str, max_age: int) -> str:
    """A short-lived HttpOnly cookie with the session cookie's attributes (OAuth state)."""
    return _cookie(name, value, max_age, http_only=True, secure=not settings.is_dev)


def session_cookies(
    settings: Settings, token: str, csrf: str, expires_at: datetime, now: datetime
) -> list[str]:
    """`Set-Cookie` values that store a session (and its CSRF token) in the browser."""
    max_age = int((expires_at - now).total_seconds())
    secure = not settings.is_dev
    return [
        _cookie(SESSION_COOKIE, token, max_age, http_only=True, secure=secure),
        _cookie(CSRF_COOKIE, csrf, max_age, http_only=False, secure=secure),
    ]


def cleared_cookies(settings: Settings) -> list[str]:
    secure = not settings.is_dev
    return [
        _cookie(SESSION_COOKIE, "", 0, http_only=True, secure=secure),
        _cookie(CSRF_COOKIE, "", 0, http_only=False, secure=secure),
    ]


def session_token(request: Request) -> str | None:
    value = request.cookies.get(SESSION_COOKIE)
    return value or None
