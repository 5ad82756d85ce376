"""Jobs: create, read, list, edit, archive, pause, resume (as `/api/jobs`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import Field

from cronicorn.mcp.tooling import Call, NoArguments, PathId, Tool
from cronicorn.schemas.common import In
from cronicorn.schemas.jobs import Job, JobCreate, JobList, JobPatch, JobWithCount
from cronicorn.services import jobs
from cronicorn.store.jobs import JobStatus

JOB_ID = PathId("id", "Job", "The job's id (from createJob or listJobs)")


class JobQuery(In):
    status: Literal["active", "paused", "archived"] | None = Field(
        default=None, description="Only jobs in this status (default: all)"
    )


async def _create(call: Call, body: JobCreate) -> Job:
    return Job.of(await jobs.create_job(call.conn, call.user_id, body, call.now))


async def _get(call: Call, _: NoArguments) -> Job:
    return Job.of(await jobs.get_job(call.conn, call.user_id, call.id("id")))


async def _list(call: Call, query: JobQuery) -> JobList:
    rows = await jobs.list_jobs(call.conn, call.user_id, query.status)
    return JobList(jobs=[JobWithCount.counted(row, n) for row, n in rows])


async def _update(call: Call, body: JobPatch) -> Job:
    return Job.of(await jobs.update_job(call.conn, call.user_id, call.id("id"), body, call.now))


def _status_change(status: JobStatus) -> Callable[[Call, NoArguments], Awaitable[Job]]:
    async def change(call: Call, _: NoArguments) -> Job:
        row = await jobs.set_job_status(call.conn, call.user_id, call.id("id"), status, call.now)
        return Job.of(row)

    return change


TOOLS: list[Tool[Any]] = [
    Tool(
        "createJob",
        "Create a job",
        "Create a job: a named group of HTTP endpoints that run on schedules. Add endpoints "
        "with addEndpoint. `description` is plain-language guidance the AI planner reads "
        "(what the job does, when to run more or less often). `aiMode` (off | suggest | auto, "
        "default auto) is the planner's default for the job's endpoints.",
        JobCreate,
        _create,
        output=Job,
    ),
    Tool(
        "getJob",
        "Get a job",
        "One job by id.",
        NoArguments,
        _get,
        ids=(JOB_ID,),
        output=Job,
        read_only=True,
    ),
    Tool(
        "listJobs",
        "List jobs",
        "The caller's jobs, newest first, each with its endpoint count (archived endpoints "
        "included). Filter with `status`: active, paused or archived.",
        JobQuery,
        _list,
        output=JobList,
        read_only=True,
    ),
    Tool(
        "updateJob",
        "Rename or describe a job",
        "Change a job's name, description or aiMode; only the fields sent change, "
        "`description: null` clears it.",
        JobPatch,
        _update,
        ids=(JOB_ID,),
        output=Job,
        idempotent=True,
    ),
    Tool(
        "archiveJob",
        "Archive a job",
        "Archive a job (soft delete): none of its endpoints run again; the history stays. "
        "An archived job cannot be resumed.",
        NoArguments,
        _status_change("archived"),
        ids=(JOB_ID,),
        output=Job,
        destructive=True,
        idempotent=True,
    ),
    Tool(
        "pauseJob",
        "Pause a job",
        "Pause every endpoint of a job until resumeJob.",
        NoArguments,
        _status_change("paused"),
        ids=(JOB_ID,),
        output=Job,
        idempotent=True,
    ),
    Tool(
        "resumeJob",
        "Resume a job",
        "Resume a paused job: endpoints that missed runs while paused run once, then return "
        "to their schedule.",
        NoArguments,
        _status_change("active"),
        ids=(JOB_ID,),
        output=Job,
        idempotent=True,
    ),
]
