"""Run now from the endpoint page: call the endpoint at once through the dispatcher (SSRF
guard, signing, the endpoint's own assertions) and record a `test` run, as
`POST /api/endpoints/{id}/test` does. The run then shows in the history (and live pages get
its NOTIFY from `store.runs.record_test_run`).

Until a face-neutral run-now service exists this mirrors the API route step for step:
the run is counted on the monthly meter before the call and committed with nothing else
open while the call is in flight.
"""

from __future__ import annotations

import json
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from cronicorn.dispatch import HttpRequest
from cronicorn.dispatch.judge import judge
from cronicorn.dispatch.signing import SigningKeyError
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import runs as run_store
from cronicorn.store import signing_keys as key_store
from cronicorn.store.endpoints import EndpointRow
from cronicorn.store.errors import QuotaExceeded
from cronicorn.store.quotas import reserve_run
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
    now = clock()
    try:
        keys = await key_store.load_signing_keys(conn, [viewer.user_id], now, runtime.auth_secret)
        await reserve_run(conn, viewer.user_id, runtime.settings.quotas, now)
    except SigningKeyError:
        return _back(endpoint.id, "problem=key")
    except QuotaExceeded:
        return _back(endpoint.id, "problem=quota")
    await conn.commit()
    result = await dispatcher.execute(_request_for(endpoint, keys.get(viewer.user_id, [])))
    if endpoint.assertions is not None:
        result = judge(result, json.dumps(endpoint.assertions, sort_keys=True))
    await run_store.record_test_run(
        conn,
        user_id=viewer.user_id,
        endpoint_id=endpoint.id,
        started_at=now,
        finished_at=now + timedelta(milliseconds=result.duration_ms),
        outcome={
            "status": result.status,
            "duration_ms": result.duration_ms,
            "status_code": result.status_code,
            "response_body": result.response_json,
            "response_text": result.response_text,
            "response_size": result.response_size,
            "response_truncated": result.truncated,
            "error_message": result.error_message,
        },
        worker="web",
    )
    return _back(endpoint.id, "done=ran")


def _request_for(endpoint: EndpointRow, keys: list[bytes]) -> HttpRequest:
    return HttpRequest(
        url=endpoint.url,
        method=endpoint.method,
        headers=endpoint.headers_json or {},
        body_json=endpoint.body_json,
        timeout_ms=endpoint.timeout_ms,
        max_response_size_kb=endpoint.max_response_size_kb,
        signing_keys=keys,
    )
