"""Run now from the endpoint page: `services.runs.run_now`, the same call the API's
`POST /api/endpoints/{id}/test` makes (dispatcher, signing, the endpoint's assertions, the
monthly meter, a `test` run). The run then shows in the history, and live pages get its
NOTIFY from `store.runs.record_test_run`."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from cronicorn.services.runs import run_now as run_endpoint_now
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store.errors import Conflict, QuotaExceeded
from cronicorn.web.deps import (
    ClockDep,
    ConnDep,
    DispatcherDep,
    FormDep,
    RuntimeDep,
    ViewerDep,
    require_id,
)

router = APIRouter()


def _back(endpoint_id: str, query: str) -> Response:
    return RedirectResponse(f"/endpoints/{endpoint_id}?{query}", status_code=303)


@router.post("/endpoints/{endpoint_id}/run-now")
async def run_now(
    endpoint_id: str,
    viewer: ViewerDep,
    _form: FormDep,
    conn: ConnDep,
    runtime: RuntimeDep,
    dispatcher: DispatcherDep,
    clock: ClockDep,
) -> Response:
    endpoint = await endpoint_store.get(conn, viewer.user_id, require_id(endpoint_id, "Endpoint"))
    if endpoint.archived_at is not None:
        return _back(endpoint.id, "problem=archived")
    try:
        await run_endpoint_now(
            conn,
            viewer.user_id,
            endpoint.id,
            clock(),
            dispatcher=dispatcher,
            auth_secret=runtime.auth_secret,
            quotas=runtime.settings.quotas,
        )
    except QuotaExceeded:
        return _back(endpoint.id, "problem=quota")
    except Conflict:  # archived meanwhile, or a signing key this server cannot decrypt
        return _back(endpoint.id, "problem=key")
    return _back(endpoint.id, "done=ran")
