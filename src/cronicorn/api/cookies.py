"""The session and CSRF cookies now live in `auth/cookies.py`, shared by the API and the web
pages; this name stays for the API's routers."""

from cronicorn.auth.cookies import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    cleared_cookies,
    session_cookie_attributes,
    session_cookies,
    session_token,
)

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "cleared_cookies",
    "session_cookie_attributes",
    "session_cookies",
    "session_token",
]
