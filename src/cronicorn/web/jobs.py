"""Jobs: the list (status filter, search), a job's page (its endpoints with next run, last
status and a sparkline of recent outcomes; pause, resume, archive), create and edit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal, cast

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from cronicorn.schemas.jobs import JobCreate, JobPatch
from cronicorn.services import endpoints, jobs
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store
from cronicorn.store.errors import Conflict
from cronicorn.store.outcomes import recent_outcomes
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
async def new_job_page(request: Request, viewer: ViewerDep) -> Response:
    return _job_form(request, viewer, values={"ai_mode": "auto"}, errors={})


def _job_form(
    request: Request,
    viewer: ViewerDep,
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
    )


def _job_fields(form: dict[str, str]) -> dict[str, Any]:
    return {
        "name": form.get("name", "").strip(),
        "description": form.get("description", "").strip() or None,
        "aiMode": form.get("ai_mode", "auto"),
    }


def _values(form: dict[str, str]) -> dict[str, Any]:
    return {k: form.get(k, "") for k in ("name", "description", "ai_mode")}


@router.post("/jobs/new")
async def create_job(
    request: Request, viewer: ViewerDep, form: FormDep, conn: ConnDep, clock: ClockDep
) -> Response:
    try:
        body = JobCreate.model_validate(_job_fields(form))
    except ValidationError as exc:
        errors = model_errors(exc, JobCreate)
        return _job_form(request, viewer, values=_values(form), errors=errors, status=422)
    row = await jobs.create_job(conn, viewer.user_id, body, clock())
    return RedirectResponse(f"/jobs/{row.id}?done=created", status_code=303)


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: str, viewer: ViewerDep, conn: ConnDep) -> Response:
    job = await jobs.get_job(conn, viewer.user_id, require_id(job_id, "Job"))
    rows = await endpoints.list_endpoints(conn, viewer.user_id, job.id)
    recent = await recent_outcomes(conn, viewer.user_id, [e.id for e in rows])
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
    )


@router.get("/jobs/{job_id}/edit")
async def edit_job_page(
    request: Request, job_id: str, viewer: ViewerDep, conn: ConnDep
) -> Response:
    job = await jobs.get_job(conn, viewer.user_id, require_id(job_id, "Job"))
    values = {"name": job.name, "description": job.description or "", "ai_mode": job.ai_mode}
    return _job_form(request, viewer, values=values, errors={}, job=job)


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
    try:
        body = JobPatch.model_validate(_job_fields(form))
    except ValidationError as exc:
        errors = model_errors(exc, JobPatch)
        return _job_form(request, viewer, values=_values(form), errors=errors, job=job, status=422)
    await jobs.update_job(conn, viewer.user_id, job.id, body, clock())
    return RedirectResponse(f"/jobs/{job.id}?done=saved", status_code=303)


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
