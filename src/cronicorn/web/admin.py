"""`/admin/*`, for administrators only (anyone else gets the same 404 as a missing page):
users (disable, re-enable), backups (list with status, start one, verify one) and the
audit log with filters.

Backups go through `cronicorn.backup.service` only, as `/api/backups` does; the dump runs
in the background and shows up in the list when done. Disabling a user signs out all
their sessions at once (`services.accounts.set_disabled`, as `/api/users` does).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from cronicorn.backup import service as backups
from cronicorn.services import accounts
from cronicorn.store import audit
from cronicorn.store.errors import NotFound
from cronicorn.web.deps import (
    ClockDep,
    ConnDep,
    FormDep,
    RuntimeDep,
    Viewer,
    ViewerDep,
    require_id,
)
from cronicorn.web.settings import act_as
from cronicorn.web.templating import render

router = APIRouter(prefix="/admin")
AUDIT_PAGE = 50
ENTITIES = ("user", "api_key", "signing_key", "job", "endpoint", "channel", "backup")
ACTIONS = ("create", "update", "delete")


def admin_viewer(viewer: ViewerDep) -> Viewer:
    """Not an administrator: the page does not exist for them."""
    if not viewer.is_admin:
        raise NotFound("Page")
    return viewer


AdminDep = Annotated[Viewer, Depends(admin_viewer)]


@router.get("/users")
async def users_page(request: Request, viewer: AdminDep, conn: ConnDep) -> Response:
    done = {"disabled": "User disabled and signed out.", "enabled": "User re-enabled."}
    return render(
        request,
        "admin_users.html",
        viewer=viewer,
        title="Users",
        users=await accounts.list_users(conn),
        flash=done.get(request.query_params.get("done", "")),
    )


@router.post("/users/{user_id}/{change}")
async def set_disabled(
    user_id: str, change: str, viewer: AdminDep, form: FormDep, conn: ConnDep, clock: ClockDep
) -> Response:
    if change not in {"disable", "enable"}:
        raise NotFound("Page")
    target = require_id(user_id, "User")
    if target == viewer.user_id:
        raise NotFound("User")  # an admin cannot lock themselves out from here
    await act_as(conn, viewer)
    await accounts.set_disabled(
        conn, target, disabled=change == "disable", now=clock(), by=viewer.user_id
    )
    return RedirectResponse(f"/admin/users?done={change}d", status_code=303)


@router.get("/backups")
async def backups_page(request: Request, viewer: AdminDep, runtime: RuntimeDep) -> Response:
    return await _backups(request, viewer, runtime)


async def _backups(
    request: Request,
    viewer: Viewer,
    runtime: RuntimeDep,
    *,
    status_code: int = 200,
    flash: str | None = None,
    flash_kind: str = "ok",
    report: dict[str, object] | None = None,
) -> Response:
    error = None
    try:
        items = await asyncio.to_thread(backups.list_backups, runtime)
    except backups.BackupError as exc:
        items, error = [], str(exc)
    return render(
        request,
        "admin_backups.html",
        viewer=viewer,
        title="Backups",
        backups=items,
        list_error=error,
        status_code=status_code,
        flash=flash,
        flash_kind=flash_kind,
        report=report,
    )


@router.post("/backups")
async def start_backup(
    request: Request, viewer: AdminDep, form: FormDep, runtime: RuntimeDep
) -> Response:
    try:
        name = await backups.start_backup(runtime)
    except backups.BackupBusy as exc:
        return await _backups(
            request, viewer, runtime, status_code=409, flash=str(exc), flash_kind="bad"
        )
    except backups.BackupError as exc:
        return await _backups(
            request, viewer, runtime, status_code=503, flash=str(exc), flash_kind="bad"
        )
    text = f"Backup {name} started: it appears below when it is written."
    return await _backups(request, viewer, runtime, status_code=202, flash=text)


@router.post("/backups/{name}/verify")
async def verify_backup(
    name: str, request: Request, viewer: AdminDep, form: FormDep, runtime: RuntimeDep
) -> Response:
    try:
        report = await backups.verify(runtime, name)
    except backups.BackupNotFound:
        raise NotFound("Backup") from None
    except backups.BackupError as exc:
        return await _backups(
            request, viewer, runtime, status_code=503, flash=str(exc), flash_kind="bad"
        )
    ok = bool(report["ok"])
    text = f"Backup {name} {'verified: it restores' if ok else 'failed verification'}."
    return await _backups(
        request, viewer, runtime, flash=text, flash_kind="ok" if ok else "bad", report=report
    )


def _day(text: str, *, end: bool) -> datetime | None:
    try:
        day = datetime.combine(datetime.fromisoformat(text).date(), time(), UTC)
    except ValueError:
        return None
    return day + timedelta(days=1) if end else day


def _filter_text(value: str | None) -> str | None:
    """A free-text filter as PostgreSQL text can hold it (no NUL), at most 200 characters."""
    return (value or "").replace("\x00", "").strip()[:200] or None


@router.get("/audit")
async def audit_page(request: Request, viewer: AdminDep, conn: ConnDep) -> Response:
    q = request.query_params
    entity = q.get("entity") if q.get("entity") in ENTITIES else None
    action = q.get("action") if q.get("action") in ACTIONS else None
    actor = _filter_text(q.get("actor"))
    entity_id = _filter_text(q.get("entity_id"))
    before = q.get("before", "")
    filters = audit.Filters(
        entity=entity,
        entity_id=entity_id,
        actor=actor,
        action=action,
        since=_day(q.get("since", ""), end=False),
        until=_day(q.get("until", ""), end=True),
    )
    cursor = int(before) if before.isascii() and before.isdigit() and len(before) <= 18 else None
    entries = await audit.list_entries(conn, filters, before_id=cursor, limit=AUDIT_PAGE)
    params = {k: v for k, v in q.items() if k != "before" and v}
    return render(
        request,
        "admin_audit.html",
        viewer=viewer,
        title="Audit log",
        entries=entries,
        entities=ENTITIES,
        actions=ACTIONS,
        values={**params},
        next_before=entries[-1].id if len(entries) == AUDIT_PAGE else None,
        params=params,
    )
