"""`/api/jobs`: create, list, read, edit, archive (DELETE), pause, resume."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from cronicorn.api.deps import ConnDep, ListingDep, UserDep
from cronicorn.api.params import NowDep, require_id
from cronicorn.schemas.jobs import JOB_ITEM_JSON, Job, JobCreate, JobList, JobPatch
from cronicorn.services import jobs
from cronicorn.store import jobs as job_store
from cronicorn.store.jobs import JobStatus
from cronicorn.store.read_pool import ReadPool

router = APIRouter(tags=["Jobs"])
JSON = "application/json"


@router.post("/jobs", status_code=201, response_model=Job, summary="Create a job")
async def create_job(body: JobCreate, user: UserDep, conn: ConnDep, now: NowDep) -> Job:
    return Job.of(await jobs.create_job(conn, user.user_id, body, now))


@router.get("/jobs", response_model=JobList, summary="List jobs with their endpoint counts")
async def list_jobs(
    read: ListingDep,  # one read statement, on the read pool (issue 17: the hottest route)
    status: Annotated[Literal["active", "paused", "archived"] | None, Query()] = None,
) -> Response:
    return Response(await jobs_json(read.pool, read.user.user_id, status), media_type=JSON)


async def jobs_json(pool: ReadPool, user_id: str, status: JobStatus | None) -> bytes:
    """The job list's body (also served before the framework: `api.fast_lists`), each job's
    JSON written by PostgreSQL."""
    items = await job_store.list_json(pool, user_id, status, JOB_ITEM_JSON)
    return b'{"jobs":[' + ",".join(items).encode() + b"]}"


@router.get("/jobs/{id}", response_model=Job, summary="Get a job")
async def get_job(id: str, user: UserDep, conn: ConnDep) -> Job:
    return Job.of(await jobs.get_job(conn, user.user_id, require_id(id, "Job")))


@router.patch("/jobs/{id}", response_model=Job, summary="Rename or describe a job")
async def patch_job(id: str, body: JobPatch, user: UserDep, conn: ConnDep, now: NowDep) -> Job:
    return Job.of(await jobs.update_job(conn, user.user_id, require_id(id, "Job"), body, now))


@router.delete("/jobs/{id}", response_model=Job, summary="Archive a job (soft delete)")
@router.post(
    "/jobs/{id}/archive",
    response_model=Job,
    summary="Archive a job (same as DELETE /jobs/{id}; the path the reference's docs show)",
)
async def archive_job(id: str, user: UserDep, conn: ConnDep, now: NowDep) -> Job:
    job_id = require_id(id, "Job")
    return Job.of(await jobs.set_job_status(conn, user.user_id, job_id, "archived", now))


@router.post("/jobs/{id}/pause", response_model=Job, summary="Pause every endpoint of a job")
async def pause_job(id: str, user: UserDep, conn: ConnDep, now: NowDep) -> Job:
    job_id = require_id(id, "Job")
    return Job.of(await jobs.set_job_status(conn, user.user_id, job_id, "paused", now))


@router.post(
    "/jobs/{id}/resume",
    response_model=Job,
    summary="Resume a paused job",
    description="Endpoints that missed runs while paused run once, then return to their grid.",
)
async def resume_job(id: str, user: UserDep, conn: ConnDep, now: NowDep) -> Job:
    job_id = require_id(id, "Job")
    return Job.of(await jobs.set_job_status(conn, user.user_id, job_id, "active", now))
