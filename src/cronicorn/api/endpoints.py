"""`/api/jobs/{jobId}/endpoints…`: create, list, read, edit, archive, delete endpoints.

The `jobId` in the path must be the endpoint's job (the reference ignored it). URLs pass the
dispatcher's SSRF check when they are set, so a URL that could never run is a 422 now rather
than a failed run later.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from cronicorn.api.deps import ConnDep, ListingDep, QuotasDep, UserDep
from cronicorn.api.params import NowDep, require_id
from cronicorn.dispatch import DispatchConfig, Dispatcher
from cronicorn.dispatch.lazy import close_dispatcher_on, dispatcher_on
from cronicorn.runtime import Runtime
from cronicorn.schemas.endpoints import (
    ENDPOINT_JSON,
    Endpoint,
    EndpointCreate,
    EndpointList,
    EndpointPatch,
)
from cronicorn.services import endpoints
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store.read_pool import ReadPool

router = APIRouter(tags=["Endpoints"])

JobIdPath = Annotated[str, Path(alias="jobId")]


async def get_dispatcher(request: Request) -> Dispatcher:
    """The API process's one dispatcher, created on first use and kept on the app state."""
    runtime: Runtime = request.app.state.runtime
    config = DispatchConfig(allow_networks=runtime.settings.allow_networks)
    return await dispatcher_on(request.app.state, config)


async def close_dispatcher(app: Any) -> None:
    """Close the dispatcher `get_dispatcher` made, if any (process shutdown)."""
    await close_dispatcher_on(app.state)


DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]


@router.post(
    "/jobs/{jobId}/endpoints", status_code=201, response_model=Endpoint, summary="Add an endpoint"
)
async def create_endpoint(
    job: JobIdPath,
    body: EndpointCreate,
    user: UserDep,
    conn: ConnDep,
    dispatcher: DispatcherDep,
    quotas: QuotasDep,
    now: NowDep,
) -> Endpoint:
    row = await endpoints.create_endpoint(
        conn,
        user.user_id,
        require_id(job, "Job"),
        body.model_dump(),
        now,
        dispatcher=dispatcher,
        quotas=quotas,
    )
    return Endpoint.of(row)


@router.get(
    "/jobs/{jobId}/endpoints",
    response_model=EndpointList,
    summary="List a job's endpoints (archived ones included)",
)
async def list_endpoints(job: JobIdPath, read: ListingDep) -> Response:
    body = await endpoints_json(read.pool, read.user.user_id, require_id(job, "Job"))
    return Response(body, media_type="application/json")


async def endpoints_json(pool: ReadPool, user_id: str, job_id: str) -> bytes:
    """A job's endpoints: one statement on the read pool, each endpoint's JSON written by
    PostgreSQL (issue 17: a hot list route, also served before the framework by
    `api.fast_lists`)."""
    items = await endpoint_store.list_for_job_json(pool, user_id, job_id, ENDPOINT_JSON)
    return b'{"endpoints":[' + ",".join(items).encode() + b"]}"


@router.get("/jobs/{jobId}/endpoints/{id}", response_model=Endpoint, summary="Get an endpoint")
async def get_endpoint(job: JobIdPath, id: str, user: UserDep, conn: ConnDep) -> Endpoint:
    row = await endpoints.get_endpoint(
        conn, user.user_id, require_id(id, "Endpoint"), job_id=require_id(job, "Endpoint")
    )
    return Endpoint.of(row)


@router.patch(
    "/jobs/{jobId}/endpoints/{id}",
    response_model=Endpoint,
    summary="Edit an endpoint",
    description=(
        "Only the fields sent change; `null` clears a field. Setting `baselineCron` clears "
        "`baselineIntervalMs` and vice versa. The next run is replanned when the schedule "
        "changes."
    ),
)
async def patch_endpoint(
    job: JobIdPath,
    id: str,
    body: EndpointPatch,
    user: UserDep,
    conn: ConnDep,
    dispatcher: DispatcherDep,
    quotas: QuotasDep,
    now: NowDep,
) -> Endpoint:
    row = await endpoints.update_endpoint(
        conn,
        user.user_id,
        require_id(id, "Endpoint"),
        body.changes(),
        now,
        dispatcher=dispatcher,
        quotas=quotas,
        job_id=require_id(job, "Endpoint"),
    )
    return Endpoint.of(row)


@router.delete(
    "/jobs/{jobId}/endpoints/{id}",
    status_code=204,
    response_class=Response,
    summary="Delete an endpoint and its history",
)
async def delete_endpoint(job: JobIdPath, id: str, user: UserDep, conn: ConnDep) -> Response:
    await endpoints.delete_endpoint(
        conn, user.user_id, require_id(id, "Endpoint"), job_id=require_id(job, "Endpoint")
    )
    return Response(status_code=204)


@router.post(
    "/jobs/{jobId}/endpoints/{id}/archive",
    response_model=Endpoint,
    summary="Archive an endpoint (it stops running; its history stays)",
)
async def archive_endpoint(
    job: JobIdPath,
    id: str,
    user: UserDep,
    conn: ConnDep,
    now: NowDep,
) -> Endpoint:
    row = await endpoints.archive_endpoint(
        conn, user.user_id, require_id(id, "Endpoint"), now, job_id=require_id(job, "Endpoint")
    )
    return Endpoint.of(row)
