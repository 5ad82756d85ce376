"""Jobs: the list (status filter, search), a job's page (its endpoints with next run, last
status and a sparkline of recent outcomes; pause, resume, archive), create and edit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal, cast

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from cronicorn.notify import service as notify_service
from cronicorn.schemas.jobs import JobCreate, JobPatch
from cronicorn.services import endpoints, jobs
from cronicorn.store import channels as channel_store
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store
from cronicorn.store.errors import Conflict
from cronicorn.store.outcomes import recent_outcomes
from cronicorn.web import notify_form
from cronicorn.web.deps import ClockDep, ConnDep, FormDep, ViewerDep, require_id
from cronicorn.web.forms import Errors, flash_text, model_errors
from cronicorn.web.templating import render

router = APIRouter()
STATUSES = ("active", "paused", "archived")
AI_MODES = ("auto", "suggest", "off")


@router.get("/jobs")
async def jobs_page(
    request: Request, viewer: ViewerDep, conn: ConnDep, status: str = "", q: str = ""
) -> Response:
    wanted = status if status in STATUSES else None
    rows = await jobs.list_jobs(conn, viewer.user_id, cast(job_store.JobStatus | None, wanted))
    needle = q.strip().lower()[:200]
    if needle:
        rows = [
            (job, n)
            for job, n in rows
            if needle in job.name.lower() or needle in (job.description or "").lower()
        ]
    return render(
        request,
        "jobs.html",
        viewer=viewer,
        title="Jobs",
        jobs=rows,
        status=wanted or "",
        q=q[:200],
        statuses=STATUSES,
        flash=flash_text(request.query_params.get("done")),
    )


@router.get("/jobs/new")
async def new_job_page(request: Request, viewer: ViewerDep, conn: ConnDep) -> Response:
    values = {"ai_mode": "auto", **notify_form.notify_values(None)}
    return await _job_form(request, viewer, conn, values=values, errors={})


async def _job_form(
    request: Request,
    viewer: ViewerDep,
    conn: ConnDep,
    *,
    values: dict[str, Any],
    errors: Errors,
    job: job_store.JobRow | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "job_form.html",
        viewer=viewer,
        status_code=status,
        title=f"Edit {job.name}" if job else "New job",
        job=job,
        values=values,
        errors=errors,
        ai_modes=AI_MODES,
        notify_channels=await notify_form.channel_choices(conn, viewer.user_id),
        notify_endpoint=False,
    )


def _job_fields(form: dict[str, str]) -> dict[str, Any]:
    return {
        "name": form.get("name", "").strip(),
        "description": form.get("description", "").strip() or None,
        "aiMode": form.get("ai_mode", "auto"),
    }


async def _posted(request: Request, form: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The form's values to show again, and the ticked channel ids."""
    channels = [str(v) for v in (await request.form()).getlist(notify_form.CHANNEL_FIELD)]
    values = {k: form.get(k, "") for k in ("name", "description", "ai_mode")}
    return {**values, **notify_form.posted_values(form, channels)}, channels[:50]


def _read(
    form: dict[str, str], channels: list[str], model: type[JobCreate] | type[JobPatch]
) -> tuple[JobCreate | JobPatch | None, dict[str, Any] | None, Errors]:
    """The job body and its notify settings, or every field's error at once."""
    notify, errors = notify_form.read_notify(form, channels, endpoint=False)
    try:
        return model.model_validate(_job_fields(form)), notify, errors
    except ValidationError as exc:
        return None, notify, {**model_errors(exc, model), **errors}


@router.post("/jobs/new")
async def create_job(
    request: Request, viewer: ViewerDep, form: FormDep, conn: ConnDep, clock: ClockDep
) -> Response:
    values, channels = await _posted(request, form)
    body, notify, errors = _read(form, channels, JobCreate)
    if body is not None and not errors:
        row = await jobs.create_job(conn, viewer.user_id, cast(JobCreate, body), clock())
        errors = await notify_form.save_notify(conn, viewer.user_id, notify, clock(), job_id=row.id)
        if not errors:
            return RedirectResponse(f"/jobs/{row.id}?done=created", status_code=303)
        await conn.rollback()  # a refused subscription leaves no job behind
    return await _job_form(request, viewer, conn, values=values, errors=errors, status=422)


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: str, viewer: ViewerDep, conn: ConnDep) -> Response:
    job = await jobs.get_job(conn, viewer.user_id, require_id(job_id, "Job"))
    rows = await endpoints.list_endpoints(conn, viewer.user_id, job.id)
    recent = await recent_outcomes(conn, viewer.user_id, [e.id for e in rows])
    notify = (await notify_service.notify_of(conn, viewer.user_id, job_id=job.id)).notify
    return render(
        request,
        "job.html",
        viewer=viewer,
        title=job.name,
        job=job,
        endpoints=rows,
        recent=recent,
        flash=flash_text(request.query_params.get("done")),
        error=request.query_params.get("error") == "archived",
        notify=notify,
        notify_inherited=False,
        channel_names=await _channel_names(conn, viewer.user_id),
        edit_url=f"/jobs/{job.id}/edit",
    )


async def _channel_names(conn: ConnDep, user_id: str) -> dict[str, str]:
    return {c.id: c.name for c in await channel_store.list_for(conn, user_id)}


@router.get("/jobs/{job_id}/edit")
async def edit_job_page(
    request: Request, job_id: str, viewer: ViewerDep, conn: ConnDep
) -> Response:
    job = await jobs.get_job(conn, viewer.user_id, require_id(job_id, "Job"))
    values = {"name": job.name, "description": job.description or "", "ai_mode": job.ai_mode}
    stored = (await notify_service.notify_of(conn, viewer.user_id, job_id=job.id)).notify
    values.update(notify_form.notify_values(stored))
    return await _job_form(request, viewer, conn, values=values, errors={}, job=job)


@router.post("/jobs/{job_id}/edit")
async def edit_job(
    request: Request,
    job_id: str,
    viewer: ViewerDep,
    form: FormDep,
    conn: ConnDep,
    clock: ClockDep,
) -> Response:
    job = await jobs.get_job(conn, viewer.user_id, require_id(job_id, "Job"))
    values, channels = await _posted(request, form)
    body, notify, errors = _read(form, channels, JobPatch)
    if body is not None and not errors:
        await jobs.update_job(conn, viewer.user_id, job.id, cast(JobPatch, body), clock())
        errors = await notify_form.save_notify(conn, viewer.user_id, notify, clock(), job_id=job.id)
        if not errors:
            return RedirectResponse(f"/jobs/{job.id}?done=saved", status_code=303)
        await conn.rollback()  # the job's own edit is not half-saved either
    return await _job_form(request, viewer, conn, values=values, errors=errors, job=job, status=422)


Action = Literal["pause", "resume", "archive"]
_TARGET: dict[str, job_store.JobStatus] = {
    "pause": "paused",
    "resume": "active",
    "archive": "archived",
}
_DONE = {"pause": "paused", "resume": "resumed", "archive": "archived"}


@router.post("/jobs/{job_id}/{action}")
async def job_action(
    job_id: str,
    action: str,
    viewer: ViewerDep,
    _form: FormDep,
    conn: ConnDep,
    clock: ClockDep,
) -> Response:
    """Pause, resume or archive the whole job (resuming replans each endpoint: one catch-up
    run at most, as the API's resume)."""
    target = _TARGET.get(action)
    job_id = require_id(job_id, "Job")
    if target is None:
        return Response("Not found", status_code=404)
    try:
        await jobs.set_job_status(conn, viewer.user_id, job_id, target, clock())
    except Conflict:
        return RedirectResponse(f"/jobs/{job_id}?error=archived", status_code=303)
    where = "/jobs" if target == "archived" else f"/jobs/{job_id}"
    return RedirectResponse(f"{where}?done={_DONE[action]}", status_code=303)


MAX_BULK = 500
BULK_PAUSE = timedelta(hours=24)


@router.post("/jobs/{job_id}/endpoints/bulk")
async def bulk_endpoints(
    request: Request,
    job_id: str,
    viewer: ViewerDep,
    form: FormDep,
    conn: ConnDep,
    clock: ClockDep,
) -> Response:
    """Pause (24 h) or resume the selected endpoints of a job, in id order (the lock order
    for several endpoints); archived ones and ids of other jobs are left alone."""
    job = await jobs.get_job(conn, viewer.user_id, require_id(job_id, "Job"))
    chosen = {str(v) for v in (await request.form()).getlist("endpoint")}
    pause = form.get("action") == "pause"
    now = clock()
    live = [
        e.id
        for e in await endpoints.list_endpoints(conn, viewer.user_id, job.id)
        if e.id in chosen and e.archived_at is None
    ]
    for endpoint_id in sorted(live)[:MAX_BULK]:
        until = now + BULK_PAUSE if pause else None
        await endpoint_store.set_paused_until(conn, viewer.user_id, endpoint_id, until, now)
    done = ("paused" if pause else "resumed") if live else "none"
    return RedirectResponse(f"/jobs/{job.id}?done={done}", status_code=303)
