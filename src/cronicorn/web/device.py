"""`/device`: the page where a signed-in user approves a device-flow code (RFC 8628).

Server-rendered so the flow works without the web UI: it signs the user in with the same
session cookie as the API when needed, shows the code and the client, and approves or denies.
Forms carry the session's CSRF token; the sign-in form checks Origin (login CSRF).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cronicorn.auth import device_flow, service
from cronicorn.auth.errors import InvalidCredentials
from cronicorn.auth.tokens import same_secret
from cronicorn.runtime import Runtime
from cronicorn.web.deps import (
    ClockDep,
    ConnDep,
    RuntimeDep,
    Viewer,
    find_viewer,
    foreign_origin,
    read_form,
)
from cronicorn.web.login import attempt_allowed, start_session
from cronicorn.web.templating import render

router = APIRouter(include_in_schema=False)
CROSS_SITE = "Cross-site form refused."


def _page(request: Request, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("action", "/device")
    return render(request, "device.html", status_code=status, title="Connect a device", **context)


@router.get("")
@router.get("/approve")  # the reference's web client sends users to /device/approve
async def device_page(
    request: Request, conn: ConnDep, runtime: RuntimeDep, clock: ClockDep, user_code: str = ""
) -> Response:
    code = device_flow.normalize_user_code(user_code[:50]) if user_code else ""
    viewer = await find_viewer(request, conn, runtime, clock())
    if viewer is None:
        return _page(request, step="signin", user_code=code)
    if not code:
        return _page(request, viewer=viewer, step="enter")
    row = await device_flow.lookup(conn, code, clock())
    if row is None:
        return _page(
            request,
            404,
            viewer=viewer,
            step="enter",
            message="Unknown or expired code.",
            error=True,
        )
    return _page(
        request,
        viewer=viewer,
        step="confirm",
        user_code=row.user_code,
        client_id=row.client_id,
        email=viewer.email,
        csrf=viewer.csrf,
    )


@router.post("")
async def device_form(
    request: Request, conn: ConnDep, runtime: RuntimeDep, clock: ClockDep
) -> Response:
    form = await read_form(request)
    step, code = form.get("step", ""), device_flow.normalize_user_code(form.get("user_code", ""))
    if step == "signin":
        return await _sign_in(request, conn, runtime, clock, form, code)
    viewer = await find_viewer(request, conn, runtime, clock())
    if viewer is None:
        return _page(request, 401, step="signin", user_code=code, message="Sign in first.")
    if foreign_origin(request, runtime) or not same_secret(form.get("csrf", ""), viewer.csrf):
        return _page(
            request,
            403,
            viewer=viewer,
            step="enter",
            message="Form expired; reload it.",
            error=True,
        )
    return await _decide(request, conn, clock, viewer, code, approve=step == "approve")


async def _decide(
    request: Request, conn: ConnDep, clock: ClockDep, viewer: Viewer, code: str, *, approve: bool
) -> Response:
    row = await device_flow.decide(conn, code, user_id=viewer.user_id, approve=approve, now=clock())
    if row is None:
        message = "Unknown, expired or answered code."
        return _page(request, 404, viewer=viewer, step="enter", message=message, error=True)
    message = "Device approved." if approve else "Request denied."
    return _page(request, viewer=viewer, step="done", approved=approve, message=message)


async def _sign_in(
    request: Request,
    conn: ConnDep,
    runtime: Runtime,
    clock: ClockDep,
    form: dict[str, str],
    code: str,
) -> Response:
    if foreign_origin(request, runtime):
        return _page(request, 403, step="signin", user_code=code, message=CROSS_SITE, error=True)
    email, now = form.get("email", "")[:320], clock()
    if not await attempt_allowed(conn, request, email, now):
        message = "Too many attempts; wait a minute and try again."
        return _page(request, 429, step="signin", user_code=code, message=message, error=True)
    try:
        user = await service.authenticate_password(
            conn, email, form.get("password", "")[:1024], now
        )
    except InvalidCredentials as exc:
        return _page(request, 401, step="signin", user_code=code, message=str(exc), error=True)
    target = "/device" + (f"?{urlencode({'user_code': code})}" if code else "")
    response = RedirectResponse(target, status_code=303)
    for value in await start_session(conn, request, runtime, user, now):
        response.headers.append("set-cookie", value)
    return response
