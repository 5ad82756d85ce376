"""An endpoint's page (schedule and its source, active hints, next runs, notifications, run
history with filters; pause, resume, reset failures, set and clear hints, archive) and its
create and edit forms (with notifications) with a live preview of the next runs."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.next_runs import reason_of
from cronicorn.domain.rules_preview import rule_targets
from cronicorn.notify import service as notify_service
from cronicorn.runtime import Runtime
from cronicorn.services import endpoints, jobs
from cronicorn.store import channels as channel_store
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store
from cronicorn.store import runs as run_store
from cronicorn.store.endpoints import EndpointRow
from cronicorn.store.errors import Conflict, Invalid, QuotaExceeded
from cronicorn.web import endpoint_form, endpoint_hints, notify_form, run_now
from cronicorn.web.deps import (
    ClockDep,
    ConnDep,
    DispatcherDep,
    FormDep,
    RuntimeDep,
    Viewer,
    ViewerDep,
    require_id,
)
from cronicorn.web.forms import Errors, flash_text
from cronicorn.web.templating import render

router = APIRouter()
PAGE_SIZE = 25
RUN_FILTERS = run_store.RUN_STATUSES
PAUSES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
PAUSE_LABELS = (("1h", "1 hour"), ("24h", "24 hours"), ("7d", "7 days"))


# -- the page ---------------------------------------------------------------------------


def _page_number(raw: str) -> int:
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= 10_000 else 1


@router.get("/endpoints/{endpoint_id}")
async def endpoint_page(
    request: Request,
    endpoint_id: str,
    viewer: ViewerDep,
    conn: ConnDep,
    clock: ClockDep,
    status: str = "",
    page: str = "1",
    since: str = "",
    until: str = "",
    cursor: str = "",
    before: str = "",
) -> Response:
    endpoint = await endpoints.get_endpoint(
        conn, viewer.user_id, require_id(endpoint_id, "Endpoint")
    )
    return await _page(
        request,
        viewer,
        conn,
        clock(),
        endpoint,
        status=status,
        page=page,
        since=since,
        until=until,
        cursor=cursor,
        before=before,
    )


async def _page(
    request: Request,
    viewer: ViewerDep,
    conn: ConnDep,
    now: datetime,
    endpoint: EndpointRow,
    *,
    status: str = "",
    page: str = "1",
    since: str = "",
    until: str = "",
    cursor: str = "",
    before: str = "",
    status_code: int = 200,
    errors: Errors | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    """The page, optionally with a hint form's errors next to its fields."""
    since_at, until_at = _day(since), _day(until, end=True)
    job = await jobs.get_job(conn, viewer.user_id, endpoint.job_id)
    wanted = status if status in RUN_FILTERS else None
    number = _page_number(page)
    history = functools.partial(
        run_store.page_for_endpoint,
        conn,
        viewer.user_id,
        endpoint.id,
        status=wanted,
        since=since_at,
        until=until_at,
        limit=PAGE_SIZE,
    )
    # "Older" links carry the cursor of the page they follow, "Newer" the run the page before
    # ends at (a deep page costs what the first does, either way); a hand-made or stale
    # cursor falls back to the page number.
    cursor, before = cursor[:200], "" if cursor else before[:200]
    try:
        found = await history(
            offset=0 if cursor or before else (number - 1) * PAGE_SIZE,
            cursor=cursor or None,
            before=before or None,
        )
    except Invalid:
        cursor = before = ""
        found = await history(offset=(number - 1) * PAGE_SIZE)
    if before and found.prev_cursor is None:
        number = 1  # back at the newest runs
    runs, total = found.items, found.total
    planned = await endpoint_store.preview(conn, viewer.user_id, endpoint.id, now, 5)
    notify = (await notify_service.notify_of(conn, viewer.user_id, endpoint_id=endpoint.id)).notify
    inherited = notify is None
    if inherited:
        notify = (await notify_service.notify_of(conn, viewer.user_id, job_id=job.id)).notify
    return render(
        request,
        "endpoint.html",
        viewer=viewer,
        status_code=status_code,
        title=endpoint.name,
        endpoint=endpoint,
        job=job,
        now=now,
        hints=_active_hints(endpoint, now),
        planned=planned,
        next_reason=reason_of(endpoint.next_run_source),
        runs=runs,
        total=total,
        status=wanted or "",
        since=since if since_at else "",
        until=until if until_at else "",
        filter_query=urlencode(
            {
                "status": wanted or "",
                "since": since if since_at else "",
                "until": until if until_at else "",
            }
        ),
        page=number,
        pages=max(1, -(-total // PAGE_SIZE)),
        cursor=cursor,
        before=before,
        next_cursor=found.next_cursor,
        prev_cursor=found.prev_cursor,
        run_filters=RUN_FILTERS,
        pauses=PAUSE_LABELS,
        flash=flash_text(request.query_params.get("done")),
        problem=request.query_params.get("problem"),
        notify=notify,
        notify_inherited=inherited and notify is not None,
        channel_names={c.id: c.name for c in await channel_store.list_for(conn, viewer.user_id)},
        edit_url=f"/endpoints/{endpoint.id}/edit",
        errors=errors or {},
        values=values or {"hint_ttl_min": "60"},
    )


def _day(text: str, *, end: bool = False) -> datetime | None:
    """A `YYYY-MM-DD` filter as a UTC instant: the day's start, or (end) the next day's."""
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        return None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start + timedelta(days=1) if end else start


def _active_hints(e: EndpointRow, now: datetime) -> list[dict[str, Any]]:
    hints = []
    if e.hint_interval_ms is not None:
        hints.append(
            {
                "kind": "Interval",
                "value": e.hint_interval_ms,
                "expires_at": e.hint_interval_expires_at,
                "expired": e.hint_interval_expires_at is not None
                and e.hint_interval_expires_at <= now,
            }
        )
    if e.hint_oneshot_at is not None:
        hints.append(
            {
                "kind": "One-shot",
                "at": e.hint_oneshot_at,
                "expires_at": e.hint_oneshot_expires_at,
                "expired": e.hint_oneshot_expires_at is not None
                and e.hint_oneshot_expires_at <= now,
            }
        )
    return hints


# -- steering -------------------------------------------------------------------------------

_PROBLEMS = {
    "archived": "This endpoint is archived: it cannot be changed or run.",
    "quota": "Your monthly run quota is used up.",
}


def _back(endpoint_id: str, done: str | None = None, problem: str | None = None) -> Response:
    query = f"?done={done}" if done else f"?problem={problem}" if problem else ""
    return RedirectResponse(f"/endpoints/{endpoint_id}{query}", status_code=303)


async def _live_endpoint(conn: ConnDep, user_id: str, endpoint_id: str) -> EndpointRow | None:
    """The caller's endpoint (404 page otherwise), or None when it is archived."""
    row = await endpoints.get_endpoint(conn, user_id, require_id(endpoint_id, "Endpoint"))
    return None if row.archived_at is not None else row


@router.post("/endpoints/{endpoint_id}/pause")
async def pause(
    endpoint_id: str, viewer: ViewerDep, form: FormDep, conn: ConnDep, clock: ClockDep
) -> Response:
    row = await _live_endpoint(conn, viewer.user_id, endpoint_id)
    if row is None:
        return _back(endpoint_id, problem="archived")
    now = clock()
    until = now + PAUSES.get(form.get("for", "24h"), PAUSES["24h"])
    await endpoint_store.set_paused_until(conn, viewer.user_id, row.id, until, now)
    return _back(row.id, "paused")


@router.post("/endpoints/{endpoint_id}/resume")
async def resume(
    endpoint_id: str, viewer: ViewerDep, _form: FormDep, conn: ConnDep, clock: ClockDep
) -> Response:
    row = await _live_endpoint(conn, viewer.user_id, endpoint_id)
    if row is None:
        return _back(endpoint_id, problem="archived")
    await endpoint_store.set_paused_until(conn, viewer.user_id, row.id, None, clock())
    return _back(row.id, "resumed")


@router.post("/endpoints/{endpoint_id}/reset-failures")
async def reset_failures(
    endpoint_id: str, viewer: ViewerDep, _form: FormDep, conn: ConnDep, clock: ClockDep
) -> Response:
    row = await _live_endpoint(conn, viewer.user_id, endpoint_id)
    if row is None:
        return _back(endpoint_id, problem="archived")
    await endpoint_store.reset_failures(conn, viewer.user_id, row.id, clock())
    return _back(row.id, "reset")


@router.post("/endpoints/{endpoint_id}/clear-hints")
async def clear_hints(
    endpoint_id: str, viewer: ViewerDep, _form: FormDep, conn: ConnDep, clock: ClockDep
) -> Response:
    row = await _live_endpoint(conn, viewer.user_id, endpoint_id)
    if row is None:
        return _back(endpoint_id, problem="archived")
    await endpoint_store.clear_hints(conn, viewer.user_id, row.id, clock())
    return _back(row.id, "cleared")


async def _hint(
    request: Request,
    endpoint_id: str,
    kind: endpoint_hints.HintKind,
    viewer: Viewer,
    form: dict[str, str],
    conn: AsyncConnection,
    runtime: Runtime,
    now: datetime,
) -> Response:
    row = await _live_endpoint(conn, viewer.user_id, endpoint_id)
    if row is None:
        return _back(endpoint_id, problem="archived")
    errors, values = await endpoint_hints.submit(
        kind, form, conn, viewer.user_id, row.id, now, quotas=runtime.settings.quotas
    )
    if not errors:
        return _back(row.id, "hinted")
    await conn.rollback()
    return await _page(
        request, viewer, conn, now, row, status_code=422, errors=errors, values=values
    )


@router.post("/endpoints/{endpoint_id}/hints/interval")
async def interval_hint(
    request: Request,
    endpoint_id: str,
    viewer: ViewerDep,
    form: FormDep,
    conn: ConnDep,
    runtime: RuntimeDep,
    clock: ClockDep,
) -> Response:
    """Run at another interval for a while (`services.hints.interval_hint`)."""
    return await _hint(request, endpoint_id, "interval", viewer, form, conn, runtime, clock())


@router.post("/endpoints/{endpoint_id}/hints/oneshot")
async def oneshot_hint(
    request: Request,
    endpoint_id: str,
    viewer: ViewerDep,
    form: FormDep,
    conn: ConnDep,
    runtime: RuntimeDep,
    clock: ClockDep,
) -> Response:
    """One extra run in a given number of minutes (`services.hints.oneshot_hint`)."""
    return await _hint(request, endpoint_id, "oneshot", viewer, form, conn, runtime, clock())


@router.post("/endpoints/{endpoint_id}/archive")
async def archive(
    endpoint_id: str, viewer: ViewerDep, _form: FormDep, conn: ConnDep, clock: ClockDep
) -> Response:
    row = await endpoints.get_endpoint(conn, viewer.user_id, require_id(endpoint_id, "Endpoint"))
    await endpoints.archive_endpoint(conn, viewer.user_id, row.id, clock(), job_id=row.job_id)
    return RedirectResponse(f"/jobs/{row.job_id}?done=archived", status_code=303)


# -- create and edit ------------------------------------------------------------------------


async def _form_page(
    request: Request,
    viewer: ViewerDep,
    conn: ConnDep,
    *,
    job: job_store.JobRow,
    values: dict[str, Any],
    errors: Errors,
    endpoint: EndpointRow | None = None,
    planned: list[dict[str, Any]] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "endpoint_form.html",
        viewer=viewer,
        status_code=status,
        title=f"Edit {endpoint.name}" if endpoint else "New endpoint",
        job=job,
        endpoint=endpoint,
        values=values,
        errors=errors,
        planned=planned or [],
        methods=[(m, m) for m in endpoint_form.METHODS],
        ai_modes=endpoint_form.AI_MODES,
        overlaps=endpoint_form.OVERLAPS,
        notify_channels=await notify_form.channel_choices(conn, viewer.user_id),
        notify_endpoint=True,
        notify_modes=notify_form.MODES,
    )


@router.get("/jobs/{job_id}/endpoints/new")
async def new_endpoint_page(
    request: Request, job_id: str, viewer: ViewerDep, conn: ConnDep
) -> Response:
    job = await jobs.get_job(conn, viewer.user_id, require_id(job_id, "Job"))
    values = {**endpoint_form.form_values(None), **notify_form.notify_values(None)}
    return await _form_page(request, viewer, conn, job=job, values=values, errors={})


async def _posted(request: Request, form: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The form's values to show again, and the ticked channel ids."""
    channels = [str(v) for v in (await request.form()).getlist(notify_form.CHANNEL_FIELD)]
    return {**form, **notify_form.posted_values(form, channels)}, channels[:50]


async def _save_all(
    conn: ConnDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
    dispatcher: DispatcherDep,
    form: dict[str, str],
    channels: list[str],
    now: datetime,
    *,
    job: job_store.JobRow,
    endpoint: EndpointRow | None,
) -> tuple[EndpointRow | None, Errors]:
    """The endpoint and its notifications, both or neither (every field's error at once)."""
    notify, notify_errors = notify_form.read_notify(form, channels, endpoint=True)
    if notify_errors:
        _, errors = endpoint_form.validate(form, editing=endpoint is not None)
        return None, {**errors, **notify_errors}
    row, errors = await _check_and_save(
        conn, viewer, runtime, dispatcher, form, now, job=job, endpoint=endpoint
    )
    if row is not None:
        errors = await notify_form.save_notify(
            conn, viewer.user_id, notify, now, endpoint_id=row.id
        )
    if row is None or errors:
        await conn.rollback()
        return None, errors
    return row, {}


async def _check_and_save(
    conn: ConnDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
    dispatcher: DispatcherDep,
    form: dict[str, str],
    now: datetime,
    *,
    job: job_store.JobRow,
    endpoint: EndpointRow | None,
) -> tuple[EndpointRow | None, Errors]:
    config, errors = endpoint_form.validate(form, editing=endpoint is not None)
    if config is None:
        return None, errors
    quotas = runtime.settings.quotas
    try:
        if endpoint is None:
            row = await endpoints.create_endpoint(
                conn, viewer.user_id, job.id, config, now, dispatcher=dispatcher, quotas=quotas
            )
        else:
            row = await endpoints.update_endpoint(
                conn, viewer.user_id, endpoint.id, config, now, dispatcher=dispatcher, quotas=quotas
            )
    except Invalid as exc:
        return None, endpoint_form.invalid_errors(exc)
    except (Conflict, QuotaExceeded) as exc:
        return None, {"_": str(exc)}
    return row, {}


@router.post("/jobs/{job_id}/endpoints/new")
async def create_endpoint(
    request: Request,
    job_id: str,
    viewer: ViewerDep,
    form: FormDep,
    conn: ConnDep,
    runtime: RuntimeDep,
    dispatcher: DispatcherDep,
    clock: ClockDep,
) -> Response:
    job = await jobs.get_job(conn, viewer.user_id, require_id(job_id, "Job"))
    values, channels = await _posted(request, form)
    row, errors = await _save_all(
        conn, viewer, runtime, dispatcher, form, channels, clock(), job=job, endpoint=None
    )
    if row is None:
        return await _form_page(
            request, viewer, conn, job=job, values=values, errors=errors, status=422
        )
    return RedirectResponse(f"/endpoints/{row.id}?done=created", status_code=303)


@router.get("/endpoints/{endpoint_id}/edit")
async def edit_endpoint_page(
    request: Request, endpoint_id: str, viewer: ViewerDep, conn: ConnDep, clock: ClockDep
) -> Response:
    row = await endpoints.get_endpoint(conn, viewer.user_id, require_id(endpoint_id, "Endpoint"))
    job = await jobs.get_job(conn, viewer.user_id, row.job_id)
    planned = await endpoint_store.preview(conn, viewer.user_id, row.id, clock(), 5)
    values = endpoint_form.form_values(row)
    stored = (await notify_service.notify_of(conn, viewer.user_id, endpoint_id=row.id)).notify
    values.update(notify_form.notify_values(stored))
    return await _form_page(
        request, viewer, conn, job=job, values=values, errors={}, endpoint=row, planned=planned
    )


@router.post("/endpoints/{endpoint_id}/edit")
async def edit_endpoint(
    request: Request,
    endpoint_id: str,
    viewer: ViewerDep,
    form: FormDep,
    conn: ConnDep,
    runtime: RuntimeDep,
    dispatcher: DispatcherDep,
    clock: ClockDep,
) -> Response:
    row = await endpoints.get_endpoint(conn, viewer.user_id, require_id(endpoint_id, "Endpoint"))
    job = await jobs.get_job(conn, viewer.user_id, row.job_id)
    values, channels = await _posted(request, form)
    saved, errors = await _save_all(
        conn, viewer, runtime, dispatcher, form, channels, clock(), job=job, endpoint=row
    )
    if saved is None:
        return await _form_page(
            request, viewer, conn, job=job, values=values, errors=errors, endpoint=row, status=422
        )
    return RedirectResponse(f"/endpoints/{saved.id}?done=saved", status_code=303)


@router.post("/endpoints/preview")
async def preview_fragment(
    request: Request, viewer: ViewerDep, form: FormDep, conn: ConnDep, clock: ClockDep
) -> Response:
    """The form's live preview (htmx): the next runs this draft would get, or why none."""
    row = None
    if form.get("endpoint_id"):
        row = await endpoints.get_endpoint(
            conn, viewer.user_id, require_id(form["endpoint_id"], "Endpoint")
        )
    targets = rule_targets(endpoint_form.draft_rules(form))
    siblings = await endpoint_store.rule_bounds(conn, viewer.user_id, targets)
    planned, errors = endpoint_form.schedule_preview(form, row, clock(), siblings)
    return render(
        request, "partials/preview_body.html", viewer=viewer, planned=planned, preview_errors=errors
    )


router.include_router(run_now.router)  # POST /endpoints/{id}/run-now (web/run_now.py)
