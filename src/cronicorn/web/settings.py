"""`/settings`: the signed-in user's account. Profile, password change, API keys (a new key
is shown once, on the page that created it, never again), the webhook signing key (generate
or rotate; the raw key shown once), and the browser and device sessions (revoke one).

The same store and auth functions as `/api/auth/*`, `/api/signing-keys` and `/api/devices`,
with the same rules: a wrong current password counts toward the sign-in attempt limit, a
password change signs out every other session, another user's key or session is a 404.
Writes name the viewer as the audit actor.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.auth import service
from cronicorn.auth.errors import InvalidCredentials, InvalidInput
from cronicorn.notify import service as notify_service
from cronicorn.schemas.notify import AccountEvent, AccountNotifyBody, AccountNotifySettings
from cronicorn.services import accounts
from cronicorn.store import channels as channel_store
from cronicorn.store import login_sessions, rate_limits
from cronicorn.store import signing_keys as key_store
from cronicorn.store.audit import actor_of, set_actor
from cronicorn.store.errors import Conflict, Invalid, NotFound
from cronicorn.web.deps import (
    ClockDep,
    ConnDep,
    FormDep,
    RuntimeDep,
    Viewer,
    ViewerDep,
    require_id,
)
from cronicorn.web.forms import model_errors
from cronicorn.web.templating import render

router = APIRouter(prefix="/settings")

EXPIRY_CHOICES: tuple[tuple[str, str], ...] = (
    ("", "Never"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "365 days"),
)
ATTEMPTS_PER_MINUTE = 10
DONE = {
    "password": "Password changed. Your other sessions were signed out.",
    "revoked": "API key revoked: it stops working at once.",
    "signed-out": "Session revoked.",
    "channel-added": "Channel added.",
    "channel-removed": "Channel removed.",
    "account-notify": "Backup failure alerts saved.",
}
ACCOUNT_EVENTS: tuple[tuple[AccountEvent, str], ...] = (
    ("backup_failed", "A scheduled backup, its verification or its off-site copy failed"),
)
# AccountNotifySettings field -> the form field that shows its error
ACCOUNT_FORM = {"channels": "account_channel", "events": "account_event"}


async def act_as(conn: AsyncConnection, viewer: Viewer) -> None:
    """Name the viewer in the audit log for this transaction's writes."""
    await set_actor(conn, actor_of("session", viewer.session_id, viewer.user_id))


async def _page(
    request: Request,
    viewer: Viewer,
    conn: AsyncConnection,
    now: datetime,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    keys = await key_store.list_live(conn, viewer.user_id, now)
    done = DONE.get(request.query_params.get("done", ""))
    context: dict[str, Any] = {
        "title": "Settings",
        "api_keys": await accounts.list_api_keys(conn, viewer.user_id),
        "signing_current": next((k for k in keys if k.retire_at is None), None),
        "signing_grace": [k for k in keys if k.retire_at is not None],
        "devices": await login_sessions.list_for_user(conn, viewer.user_id, now),
        "channels": await channel_store.list_for(conn, viewer.user_id),
        "expiry_choices": EXPIRY_CHOICES,
        "now": now,
        "errors": {},
        "values": {},
        "flash": done,
        "account_events": ACCOUNT_EVENTS,
    }
    if viewer.is_admin:
        account = (await notify_service.account_notify_of(conn, viewer.user_id)).notify
        context["account_notify"] = account
        context["account_values"] = _account_values(account)
    context.update(extra)
    headers = {"cache-control": "no-store"}
    return render(
        request, "settings.html", viewer=viewer, status_code=status_code, headers=headers, **context
    )


async def settings_response(
    request: Request,
    viewer: Viewer,
    conn: AsyncConnection,
    now: datetime,
    status_code: int,
    errors: dict[str, str],
    values: dict[str, str],
) -> Response:
    """The settings page again with a form's errors next to its fields."""
    return await _page(
        request, viewer, conn, now, status_code=status_code, errors=errors, values=values
    )


def _back(done: str, anchor: str) -> RedirectResponse:
    return RedirectResponse(f"/settings?done={done}#{anchor}", status_code=303)


@router.get("")
async def settings_page(
    request: Request, viewer: ViewerDep, conn: ConnDep, clock: ClockDep
) -> Response:
    return await _page(request, viewer, conn, clock())


@router.post("/password")
async def change_password(
    request: Request, viewer: ViewerDep, form: FormDep, conn: ConnDep, clock: ClockDep
) -> Response:
    now = clock()
    current, new = form.get("current_password", ""), form.get("new_password", "")
    errors: dict[str, str] = {}  # field -> message (no secrets in here)
    if new != form.get("confirm_password", ""):
        errors["confirm_password"] = "The two new passwords differ."  # noqa: S105
    elif not await _attempt_allowed(conn, request, viewer, now):
        errors["current_password"] = "Too many attempts: wait a minute."  # noqa: S105
    else:
        try:
            await act_as(conn, viewer)
            await service.change_password(
                conn,
                viewer.user_id,
                current=current,
                new=new,
                now=now,
                keep_session=viewer.session_id,
            )
            return _back("password", "password")
        except InvalidCredentials:
            errors["current_password"] = "The current password is not right."  # noqa: S105
        except InvalidInput as exc:
            field = "new_password" if exc.field == "newPassword" else "current_password"
            errors[field] = str(exc)
    await conn.rollback()
    return await _page(request, viewer, conn, now, status_code=422, errors=errors)


async def _attempt_allowed(
    conn: AsyncConnection, request: Request, viewer: Viewer, now: datetime
) -> bool:
    """Password checks share the sign-in budget per user and address (kept on failure)."""
    ip = request.client.host if request.client else "unknown"
    bucket = f"change:{viewer.user_id}:{ip}"
    count = await rate_limits.hit(conn, bucket, rate_limits.window_start(now))
    await conn.commit()
    return count <= ATTEMPTS_PER_MINUTE


@router.post("/api-keys")
async def create_api_key(
    request: Request, viewer: ViewerDep, form: FormDep, conn: ConnDep, clock: ClockDep
) -> Response:
    now = clock()
    name, days = form.get("name", ""), form.get("expires_days", "")
    values = {"name": name, "expires_days": days}
    if days not in {value for value, _ in EXPIRY_CHOICES}:
        errors = {"expires_days": "Choose one of the listed expiries."}
        return await _page(
            request, viewer, conn, now, status_code=422, errors=errors, values=values
        )
    expires = timedelta(days=int(days)) if days else None
    try:
        await act_as(conn, viewer)
        made = await accounts.create_api_key(
            conn, viewer.user_id, name=name, now=now, expires_in=expires
        )
    except InvalidInput as exc:
        await conn.rollback()
        errors = {"name": str(exc)}
        return await _page(
            request, viewer, conn, now, status_code=422, errors=errors, values=values
        )
    return await _page(request, viewer, conn, now, new_key=made.key, new_key_name=made.name)


@router.post("/api-keys/{key_id}/revoke")
async def revoke_api_key(
    key_id: str, viewer: ViewerDep, form: FormDep, conn: ConnDep, clock: ClockDep
) -> Response:
    await act_as(conn, viewer)
    await accounts.revoke_api_key(conn, viewer.user_id, require_id(key_id, "API key"), clock())
    return _back("revoked", "api-keys")


@router.post("/signing-key")
async def new_signing_key(
    request: Request,
    viewer: ViewerDep,
    form: FormDep,
    conn: ConnDep,
    clock: ClockDep,
    runtime: RuntimeDep,
) -> Response:
    """Generate the first key, or rotate: the old key signs on through the grace period."""
    from cronicorn.dispatch.signing import encrypt_signing_key, generate_signing_key

    now = clock()
    raw, shown, prefix = generate_signing_key()
    encrypted = encrypt_signing_key(raw, runtime.auth_secret)
    await act_as(conn, viewer)
    retire_at = None
    if form.get("action") == "rotate":
        grace = timedelta(hours=runtime.settings.signing_key_grace_hours)
        try:
            _, retire_at = await key_store.rotate(
                conn, viewer.user_id, encrypted=encrypted, prefix=prefix, now=now, grace=grace
            )
        except NotFound:
            await key_store.create(
                conn, viewer.user_id, encrypted=encrypted, prefix=prefix, now=now
            )
    else:
        try:
            await key_store.create(
                conn, viewer.user_id, encrypted=encrypted, prefix=prefix, now=now
            )
        except Conflict:
            await conn.rollback()
            message = "You already have a signing key: rotate it instead."
            return await _page(request, viewer, conn, now, status_code=409, signing_error=message)
    return await _page(
        request, viewer, conn, now, new_signing_key=shown, previous_retire_at=retire_at
    )


@router.post("/devices/{session_id}/revoke")
async def revoke_device(
    session_id: str, viewer: ViewerDep, form: FormDep, conn: ConnDep, clock: ClockDep
) -> Response:
    await act_as(conn, viewer)
    if not await login_sessions.revoke(
        conn, viewer.user_id, require_id(session_id, "Session"), clock()
    ):
        raise NotFound("Session")
    if session_id == viewer.session_id:
        return RedirectResponse("/login", status_code=303)
    return _back("signed-out", "devices")


def _account_values(stored: dict[str, Any] | None) -> dict[str, Any]:
    """The account form's boxes: the stored subscription, or every event ticked."""
    if stored is None:
        return {"account_channel": [], "account_event": [e for e, _ in ACCOUNT_EVENTS]}
    return {"account_channel": stored["channels"], "account_event": stored["events"]}


def _account_body(
    channels: list[str], events: list[str]
) -> tuple[AccountNotifyBody | None, dict[str, str]]:
    """No channel ticked: unsubscribe. Otherwise the API's own model decides."""
    if not channels:
        return AccountNotifyBody(notify=None), {}
    try:
        settings = AccountNotifySettings.model_validate({"channels": channels, "events": events})
    except ValidationError as exc:
        errors = model_errors(exc, AccountNotifySettings)
        return None, {ACCOUNT_FORM.get(k, "account_channel"): v for k, v in errors.items()}
    return AccountNotifyBody(notify=settings), {}


@router.post("/account-notify")
async def account_notify(
    request: Request, viewer: ViewerDep, form: FormDep, conn: ConnDep, clock: ClockDep
) -> Response:
    """Admins: which of their channels hear of failed scheduled backups, saved through
    `notify.service.subscribe_account` (as `PUT /api/account/notify`)."""
    if not viewer.is_admin:
        raise NotFound("Page")
    now = clock()
    posted = await request.form()
    channels = [str(v) for v in posted.getlist("account_channel")][:50]
    events = [str(v) for v in posted.getlist("account_event")][:20]
    body, errors = _account_body(channels, events)
    if body is not None:
        try:
            await notify_service.subscribe_account(conn, viewer.user_id, body, now=now)
            return _back("account-notify", "account-notify")
        except Invalid as exc:
            await conn.rollback()
            errors = {ACCOUNT_FORM.get(exc.field, "account_channel"): exc.message}
    values = {"account_channel": channels, "account_event": events}
    return await _page(
        request, viewer, conn, now, status_code=422, errors=errors, account_values=values
    )
