"""Dependencies of every page: the runtime, the clock, one connection, the signed-in viewer,
and checked form posts.

The pages use the API's login session (the same `cronicorn_session` cookie, `auth.cookies`,
`auth.credentials`): one sign-in serves both. A page request is not counted against the API's
rate limit (as the device page never was); sign-in attempts are (`web/login.py`).

Every POST is checked twice: its Origin (when the browser sends one) must be ours, and it must
carry the session's CSRF token, in the form field `csrf` or the `X-CSRF-Token` header (htmx).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.auth import credentials
from cronicorn.auth.cookies import CSRF_HEADER, session_cookies, session_token
from cronicorn.auth.tokens import csrf_token, same_secret
from cronicorn.dispatch import DispatchConfig, Dispatcher
from cronicorn.dispatch.lazy import dispatcher_on
from cronicorn.runtime import Runtime
from cronicorn.store.audit import actor_of, set_actor
from cronicorn.store.errors import NotFound
from cronicorn.web.security import add_response_header

Clock = Callable[[], datetime]
CSRF_FIELD = "csrf"
MAX_FIELD_CHARS = 100_000


class LoginRequired(Exception):
    """No valid session: pages redirect to /login?next=…, htmx requests are told to."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class FormRefused(Exception):
    """A POST without our Origin or the session's CSRF token (answered 403)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_clock(request: Request) -> Clock:
    """The app's clock (`api.deps.set_clock` also sets it on this mounted app), else wall."""
    clock: Clock = getattr(request.app.state, "clock", utcnow)
    return clock


async def get_conn(
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> AsyncIterator[AsyncConnection]:
    """One connection per request: committed on success, rolled back on any error."""
    async with runtime.engine.connect() as conn:
        try:
            yield conn
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ClockDep = Annotated[Clock, Depends(get_clock)]
# scope="function": commit before the response is sent (see api.deps.ConnDep).
ConnDep = Annotated[AsyncConnection, Depends(get_conn, scope="function")]


@dataclass(frozen=True)
class Viewer:
    """The signed-in user as the pages need them."""

    user_id: str
    email: str
    name: str
    is_admin: bool
    session_id: str
    csrf: str  # the session's CSRF token, for forms and the page's <meta>


async def find_viewer(
    request: Request, conn: AsyncConnection, runtime: Runtime, now: datetime
) -> Viewer | None:
    """The session behind the cookie, or None (no cookie, expired, revoked, user disabled).
    A session that slid forward gets its cookies again."""
    token = session_token(request)
    if token is None:
        return None
    ttl = timedelta(days=runtime.settings.session_ttl_days)
    identity = await credentials.from_session_token(conn, token, via="session", now=now, ttl=ttl)
    if identity is None or identity.email is None:
        return None
    csrf = csrf_token(runtime.auth_secret, token)
    if identity.refreshed and identity.expires_at is not None:
        for value in session_cookies(runtime.settings, token, csrf, identity.expires_at, now):
            add_response_header(request, "set-cookie", value)
    return Viewer(
        identity.user_id,
        identity.email,
        identity.name or "",
        identity.is_admin,
        identity.credential_id,
        csrf,
    )


async def current_viewer(
    request: Request, conn: ConnDep, runtime: RuntimeDep, clock: ClockDep
) -> Viewer:
    viewer = await find_viewer(request, conn, runtime, clock())
    if viewer is None:
        raise LoginRequired(_here(request))
    return viewer


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def _here(request: Request) -> str:
    """Where to come back after signing in (an htmx fragment's page, not the fragment)."""
    current = request.headers.get("hx-current-url")
    if current:
        parts = urlsplit(current)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def login_url(next_path: str) -> str:
    return "/login" + (f"?{urlencode({'next': next_path})}" if next_path != "/" else "")


def foreign_origin(request: Request, runtime: Runtime) -> bool:
    """A browser's POST carries Origin; one from another site is refused."""
    origin = request.headers.get("origin")
    if origin is None:
        return False
    own = f"{request.url.scheme}://{request.url.netloc}"
    web = urlsplit(runtime.settings.web_url)
    return origin not in {own, f"{web.scheme}://{web.netloc}"}


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields as text (files ignored, each field capped)."""
    form = await request.form()
    return {k: v[:MAX_FIELD_CHARS] for k, v in form.items() if isinstance(v, str)}


async def checked_form(
    request: Request, viewer: ViewerDep, runtime: RuntimeDep, conn: ConnDep
) -> dict[str, str]:
    """The posted form of a signed-in viewer, after the Origin and CSRF checks. The
    request's transaction then names the viewer as the actor of what the audit triggers
    record (as the API's gate does for its writes)."""
    if foreign_origin(request, runtime):
        raise FormRefused("Cross-site form refused.")
    form = await read_form(request)
    sent = form.pop(CSRF_FIELD, "") or request.headers.get(CSRF_HEADER, "")
    if not sent or not same_secret(sent, viewer.csrf):
        raise FormRefused("This form has expired; reload the page and try again.")
    await set_actor(conn, actor_of("session", viewer.session_id, viewer.user_id))
    return form


FormDep = Annotated[dict[str, str], Depends(checked_form)]


_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def require_id(value: str, what: str) -> str:
    """An id that cannot exist is the same 404 page as another user's id."""
    if _ID.fullmatch(value) is None:
        raise NotFound(what)
    return value


def count_param(raw: str, most: int) -> int:
    """A count from a query string (an offset, a position), at most `most`; anything but
    ASCII digits ('-3', '³', '1e3') is 0, never an error page."""
    return min(int(raw), most) if raw.isascii() and raw.isdigit() else 0


async def get_dispatcher(request: Request) -> Dispatcher:
    """The pages' dispatcher (SSRF checks of URLs, run now), made on first use; closed by
    `web.app.close_web` at shutdown."""
    runtime: Runtime = request.app.state.runtime
    config = DispatchConfig(allow_networks=runtime.settings.allow_networks)
    return await dispatcher_on(request.app.state, config)


DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
