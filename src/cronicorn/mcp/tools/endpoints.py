"""Endpoints: add, read, list, edit, archive, delete (as `/api/jobs/{jobId}/endpoints`).

A URL is checked by the dispatcher's SSRF guard when it is set, as the API does, so a URL
that could never run is refused now (422 on `url`) rather than failing every run later.
"""

from __future__ import annotations

from typing import Any

from cronicorn.mcp.tooling import Call, NoArguments, PathId, Tool
from cronicorn.schemas.endpoints import Endpoint, EndpointCreate, EndpointList, EndpointPatch
from cronicorn.services import endpoints

JOB_ID = PathId("jobId", "Job", "The job's id (from createJob or listJobs)")
ENDPOINT_IN_JOB = (
    PathId("jobId", "Endpoint", "The id of the endpoint's job"),
    PathId("id", "Endpoint", "The endpoint's id (from addEndpoint or listEndpoints)"),
)


async def _add(call: Call, body: EndpointCreate) -> Endpoint:
    row = await endpoints.create_endpoint(
        call.conn,
        call.user_id,
        call.id("jobId"),
        body.model_dump(),
        call.now,
        dispatcher=await call.dispatcher(),
        quotas=call.runtime.settings.quotas,
    )
    return Endpoint.of(row)


async def _get(call: Call, _: NoArguments) -> Endpoint:
    row = await endpoints.get_endpoint(
        call.conn, call.user_id, call.id("id"), job_id=call.id("jobId")
    )
    return Endpoint.of(row)


async def _list(call: Call, _: NoArguments) -> EndpointList:
    rows = await endpoints.list_endpoints(call.conn, call.user_id, call.id("jobId"))
    return EndpointList(endpoints=[Endpoint.of(row) for row in rows])


async def _update(call: Call, body: EndpointPatch) -> Endpoint:
    row = await endpoints.update_endpoint(
        call.conn,
        call.user_id,
        call.id("id"),
        body.changes(),
        call.now,
        dispatcher=await call.dispatcher(),
        quotas=call.runtime.settings.quotas,
        job_id=call.id("jobId"),
    )
    return Endpoint.of(row)


async def _archive(call: Call, _: NoArguments) -> Endpoint:
    row = await endpoints.archive_endpoint(
        call.conn, call.user_id, call.id("id"), call.now, job_id=call.id("jobId")
    )
    return Endpoint.of(row)


async def _delete(call: Call, _: NoArguments) -> dict[str, Any]:
    await endpoints.delete_endpoint(call.conn, call.user_id, call.id("id"), job_id=call.id("jobId"))
    return {"deleted": True, "id": call.id("id")}


SCHEDULE_HELP = (
    "Schedule: exactly one of baselineIntervalMs (run every N milliseconds, at least 1000) or "
    "baselineCron (5-field cron such as '*/15 * * * *', read in `timezone`, an IANA name, "
    "default UTC). minIntervalMs/maxIntervalMs are hard limits no hint, AI or rule can cross. "
    "timeoutMs bounds one call (milliseconds). `description` tells the AI planner what the "
    "endpoint is for and how its schedule may adapt. aiMode: inherit (the job's), off, "
    "suggest or auto. assertions decide when a 2xx still fails; rules change the schedule "
    "from the response (read the responses resource); retry repeats a failed call in its slot."
)

TOOLS: list[Tool[Any]] = [
    Tool(
        "addEndpoint",
        "Add an endpoint",
        "Add an HTTP endpoint to a job. `url` must be http(s) and reachable by the server "
        "(private addresses are refused unless the operator allows them); method GET, POST, "
        "PUT, PATCH, DELETE or HEAD; headersJson an object of header strings; bodyJson any "
        "JSON (sent as the request body). " + SCHEDULE_HELP,
        EndpointCreate,
        _add,
        ids=(JOB_ID,),
        output=Endpoint,
    ),
    Tool(
        "getEndpoint",
        "Get an endpoint",
        "One endpoint with its configuration and schedule state (nextRunAt, lastRunAt, "
        "failureCount, hints in force and when they expire, pausedUntil).",
        NoArguments,
        _get,
        ids=ENDPOINT_IN_JOB,
        output=Endpoint,
        read_only=True,
    ),
    Tool(
        "listEndpoints",
        "List a job's endpoints",
        "Every endpoint of a job, archived ones included, oldest first.",
        NoArguments,
        _list,
        ids=(JOB_ID,),
        output=EndpointList,
        read_only=True,
    ),
    Tool(
        "updateEndpoint",
        "Edit an endpoint",
        "Change an endpoint's configuration: only the fields sent change, `null` clears a "
        "field. Setting baselineCron clears baselineIntervalMs and vice versa; the next run is "
        "replanned when the schedule changes. " + SCHEDULE_HELP,
        EndpointPatch,
        _update,
        ids=ENDPOINT_IN_JOB,
        output=Endpoint,
        idempotent=True,
    ),
    Tool(
        "archiveEndpoint",
        "Archive an endpoint",
        "Archive an endpoint: it stops running; its runs stay readable.",
        NoArguments,
        _archive,
        ids=ENDPOINT_IN_JOB,
        output=Endpoint,
        destructive=True,
        idempotent=True,
    ),
    Tool(
        "deleteEndpoint",
        "Delete an endpoint",
        "Delete an endpoint and its whole run history, for good. Prefer archiveEndpoint "
        "unless the history must go too.",
        NoArguments,
        _delete,
        ids=ENDPOINT_IN_JOB,
        destructive=True,
    ),
]
