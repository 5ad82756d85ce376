"""`/device`: the page where a signed-in user approves a device-flow code (RFC 8628).

Server-rendered so the flow works without the web UI: it signs the user in with the same
session cookie as the API when needed, shows the code and the client, and approves or denies.
Forms carry the session's CSRF token; the sign-in form checks Origin (login CSRF).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from cronicorn.api.auth_common import (
    LOGIN_ATTEMPTS_PER_MINUTE,
    client_ip,
    login_bucket,
    open_browser_session,
    throttle,
    with_cookies,
)
from cronicorn.api.cookies import session_token
from cronicorn.api.deps import ClockDep, ConnDep, RuntimeDep
from cronicorn.api.errors import ApiError
from cronicorn.api.security import security_headers
from cronicorn.auth import credentials, device_flow, service
from cronicorn.auth.errors import InvalidCredentials
from cronicorn.auth.tokens import csrf_token, same_secret
from cronicorn.runtime import Runtime
from cronicorn.store import users

router = APIRouter(include_in_schema=False)
CROSS_SITE = "Cross-site form refused."

_env = Environment(
    loader=PackageLoader("cronicorn.web", "templates"),
    autoescape=select_autoescape(["html"]),
)
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def _page(runtime: Runtime, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("action", "/device")
    html = _env.get_template("device.html").render(**context)
    response = HTMLResponse(html, status_code=status)
    for name, value in security_headers(runtime.settings):
        response.headers[name.decode()] = value.decode()
    response.headers["content-security-policy"] = PAGE_CSP
    response.headers["cache-control"] = "no-store"
    return response


async def _signed_in(
    request: Request, conn: ConnDep, runtime: Runtime, clock: ClockDep
) -> tuple[credentials.Identity, str] | None:
    token = session_token(request)
    if token is None:
        return None
    ttl = timedelta(days=runtime.settings.session_ttl_days)
    identity = await credentials.from_session_token(
        conn, token, via="session", now=clock(), ttl=ttl
    )
    return (identity, token) if identity is not None else None


@router.get("")
@router.get("/approve")  # the reference's web client sends users to /device/approve
async def device_page(
    request: Request, conn: ConnDep, runtime: RuntimeDep, clock: ClockDep, user_code: str = ""
) -> Response:
    code = device_flow.normalize_user_code(user_code[:50]) if user_code else ""
    signed_in = await _signed_in(request, conn, runtime, clock)
    if signed_in is None:
        return _page(runtime, step="signin", user_code=code)
    if not code:
        return _page(runtime, step="enter")
    identity, token = signed_in
    row = await device_flow.lookup(conn, code, clock())
    if row is None:
        return _page(runtime, 404, step="enter", message="Unknown or expired code.", error=True)
    user = await users.get_by_id(conn, identity.user_id)
    return _page(
        runtime,
        step="confirm",
        user_code=row.user_code,
        client_id=row.client_id,
        email=user.email if user else "",
        csrf=csrf_token(runtime.auth_secret, token),
    )


@router.post("")
async def device_form(
    request: Request, conn: ConnDep, runtime: RuntimeDep, clock: ClockDep
) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    step, code = form.get("step", ""), device_flow.normalize_user_code(form.get("user_code", ""))
    if step == "signin":
        return await _sign_in(request, conn, runtime, clock, form, code)
    signed_in = await _signed_in(request, conn, runtime, clock)
    if signed_in is None:
        return _page(runtime, 401, step="signin", user_code=code, message="Sign in first.")
    identity, token = signed_in
    if not same_secret(form.get("csrf", ""), csrf_token(runtime.auth_secret, token)):
        return _page(runtime, 403, step="enter", message="Form expired; reload it.", error=True)
    approve = step == "approve"
    row = await device_flow.decide(
        conn, code, user_id=identity.user_id, approve=approve, now=clock()
    )
    if row is None:
        return _page(
            runtime, 404, step="enter", message="Unknown, expired or answered code.", error=True
        )
    message = "Device approved." if approve else "Request denied."
    return _page(runtime, step="done", approved=approve, message=message)


async def _sign_in(
    request: Request,
    conn: ConnDep,
    runtime: Runtime,
    clock: ClockDep,
    form: dict[str, str],
    code: str,
) -> Response:
    if _foreign_origin(request, runtime):
        return _page(runtime, 403, step="signin", user_code=code, message=CROSS_SITE, error=True)
    email, now = form.get("email", "")[:320], clock()
    try:
        bucket = login_bucket(email, client_ip(request))
        await throttle(conn, request, bucket, LOGIN_ATTEMPTS_PER_MINUTE, now)
    except ApiError as exc:
        return _page(runtime, 429, step="signin", user_code=code, message=exc.message, error=True)
    try:
        user = await service.authenticate_password(
            conn, email, form.get("password", "")[:1024], now
        )
    except InvalidCredentials as exc:
        return _page(runtime, 401, step="signin", user_code=code, message=str(exc), error=True)
    cookies, _ = await open_browser_session(conn, request, runtime, user, now)
    target = "/device" + (f"?{urlencode({'user_code': code})}" if code else "")
    return with_cookies(RedirectResponse(target, status_code=303), cookies)


def _foreign_origin(request: Request, runtime: Runtime) -> bool:
    """A browser's form POST carries Origin; one from a foreign site is refused."""
    origin = request.headers.get("origin")
    if origin is None:
        return False
    own = f"{request.url.scheme}://{request.url.netloc}"
    web = urlsplit(runtime.settings.web_url)
    return origin not in {own, f"{web.scheme}://{web.netloc}"}
