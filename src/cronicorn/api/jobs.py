"""`/api/jobs`: create, list, read, edit, archive (DELETE), pause, resume."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from cronicorn.api.deps import ConnDep, ReadConnDep, ReaderDep, UserDep
from cronicorn.api.params import NowDep, require_id
from cronicorn.schemas.jobs import Job, JobCreate, JobList, JobPatch, JobWithCount
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store

router = APIRouter(tags=["Jobs"])


@router.post("/jobs", status_code=201, response_model=Job, summary="Create a job")
async def create_job(body: JobCreate, user: UserDep, conn: ConnDep, now: NowDep) -> Job:
    row = await job_store.create(
        conn,
        user.user_id,
        name=body.name,
        description=body.description,
        now=now,
        ai_mode=body.ai_mode,
    )
    return Job.of(row)


@router.get("/jobs", response_model=JobList, summary="List jobs with their endpoint counts")
async def list_jobs(
    user: ReaderDep,
    conn: ReadConnDep,  # one read statement: autocommitted, no BEGIN/COMMIT round trips
    status: Annotated[Literal["active", "paused", "archived"] | None, Query()] = None,
) -> JobList:
    rows = await job_store.list_with_counts(conn, user.user_id, status)
    return JobList(jobs=[JobWithCount.counted(row, n) for row, n in rows])


@router.get("/jobs/{id}", response_model=Job, summary="Get a job")
async def get_job(id: str, user: UserDep, conn: ConnDep) -> Job:
    return Job.of(await job_store.get(conn, user.user_id, require_id(id, "Job")))


@router.patch("/jobs/{id}", response_model=Job, summary="Rename or describe a job")
async def patch_job(id: str, body: JobPatch, user: UserDep, conn: ConnDep, now: NowDep) -> Job:
    changes = body.model_dump(exclude_unset=True)
    row = await job_store.update_fields(conn, user.user_id, require_id(id, "Job"), changes, now)
    return Job.of(row)


@router.delete("/jobs/{id}", response_model=Job, summary="Archive a job (soft delete)")
@router.post(
    "/jobs/{id}/archive",
    response_model=Job,
    summary="Archive a job (same as DELETE /jobs/{id}; the path the reference's docs show)",
)
async def archive_job(id: str, user: UserDep, conn: ConnDep, now: NowDep) -> Job:
    _, after = await job_store.transition(
        conn, user.user_id, require_id(id, "Job"), "archived", now
    )
    return Job.of(after)


@router.post("/jobs/{id}/pause", response_model=Job, summary="Pause every endpoint of a job")
async def pause_job(id: str, user: UserDep, conn: ConnDep, now: NowDep) -> Job:
    _, after = await job_store.transition(conn, user.user_id, require_id(id, "Job"), "paused", now)
    return Job.of(after)


@router.post(
    "/jobs/{id}/resume",
    response_model=Job,
    summary="Resume a paused job",
    description="Endpoints that missed runs while paused run once, then return to their grid.",
)
async def resume_job(id: str, user: UserDep, conn: ConnDep, now: NowDep) -> Job:
    before, after = await job_store.transition(
        conn, user.user_id, require_id(id, "Job"), "active", now
    )
    if before.status != after.status:
        await endpoint_store.reschedule_job(conn, user.user_id, after.id, now)
    return Job.of(after)
