"""Jobs: create, read, list, edit, archive, pause, resume (as `/api/jobs`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cronicorn.mcp.tooling import Call, NoArguments, PathId, Tool
from cronicorn.schemas.common import In
from cronicorn.schemas.jobs import Job, JobCreate, JobList, JobPatch, JobWithCount
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store

JOB_ID = PathId("id", "Job", "The job's id (from createJob or listJobs)")


class JobQuery(In):
    status: Literal["active", "paused", "archived"] | None = Field(
        default=None, description="Only jobs in this status (default: all)"
    )


async def _create(call: Call, body: JobCreate) -> Job:
    row = await job_store.create(
        call.conn,
        call.user_id,
        name=body.name,
        description=body.description,
        now=call.now,
        ai_mode=body.ai_mode,
    )
    return Job.of(row)


async def _get(call: Call, _: NoArguments) -> Job:
    return Job.of(await job_store.get(call.conn, call.user_id, call.id("id")))


async def _list(call: Call, query: JobQuery) -> JobList:
    rows = await job_store.list_with_counts(call.conn, call.user_id, query.status)
    return JobList(jobs=[JobWithCount.counted(row, n) for row, n in rows])


async def _update(call: Call, body: JobPatch) -> Job:
    changes = body.model_dump(exclude_unset=True)
    row = await job_store.update_fields(call.conn, call.user_id, call.id("id"), changes, call.now)
    return Job.of(row)


async def _archive(call: Call, _: NoArguments) -> Job:
    _before, after = await job_store.transition(
        call.conn, call.user_id, call.id("id"), "archived", call.now
    )
    return Job.of(after)


async def _pause(call: Call, _: NoArguments) -> Job:
    _before, after = await job_store.transition(
        call.conn, call.user_id, call.id("id"), "paused", call.now
    )
    return Job.of(after)


async def _resume(call: Call, _: NoArguments) -> Job:
    before, after = await job_store.transition(
        call.conn, call.user_id, call.id("id"), "active", call.now
    )
    if before.status != after.status:
        await endpoint_store.reschedule_job(call.conn, call.user_id, after.id, call.now)
    return Job.of(after)


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
        _archive,
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
        _pause,
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
        _resume,
        ids=(JOB_ID,),
        output=Job,
        idempotent=True,
    ),
]
