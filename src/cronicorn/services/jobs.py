"""Jobs for every face (`/api/jobs`, the job pages, the MCP job tools): create, read, list,
edit, and the status changes (pause, resume, archive). A resume replans the job's endpoints
here, so no face can resume a job and leave its endpoints on the paused plan."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.schemas.jobs import JobCreate, JobPatch
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store
from cronicorn.store.jobs import JobRow, JobStatus


async def create_job(conn: AsyncConnection, user_id: str, body: JobCreate, now: datetime) -> JobRow:
    return await job_store.create(
        conn,
        user_id,
        name=body.name,
        description=body.description,
        now=now,
        ai_mode=body.ai_mode,
    )


async def get_job(conn: AsyncConnection, user_id: str, job_id: str) -> JobRow:
    """The caller's job, or `NotFound` (also when another user owns it)."""
    return await job_store.get(conn, user_id, job_id)


async def list_jobs(
    conn: AsyncConnection, user_id: str, status: JobStatus | None = None
) -> list[tuple[JobRow, int]]:
    """Newest first, each with its endpoint count (archived endpoints included)."""
    return await job_store.list_with_counts(conn, user_id, status)


async def update_job(
    conn: AsyncConnection, user_id: str, job_id: str, body: JobPatch, now: datetime
) -> JobRow:
    """Only the fields the body sets change (`description: null` clears it)."""
    changes = body.model_dump(exclude_unset=True)
    return await job_store.update_fields(conn, user_id, job_id, changes, now)


async def set_job_status(
    conn: AsyncConnection, user_id: str, job_id: str, status: JobStatus, now: datetime
) -> JobRow:
    """Pause, resume (`active`) or archive; repeating one is a no-op, leaving `archived` a
    `Conflict`. A resume replans each live endpoint: one catch-up run at most."""
    before, after = await job_store.transition(conn, user_id, job_id, status, now)
    if status == "active" and before.status != after.status:
        await endpoint_store.reschedule_job(conn, user_id, after.id, now)
    return after
