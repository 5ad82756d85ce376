"""`GET /api/health`: database reachable (2 s budget) and schema at the code's revision.

Concurrent requests share one database probe (`store.coalesce`, `join_running`): each gets
the answer of the probe in flight or of one it starts, an answer that came after the request
did, so every response still proves the database answers; a burst of health checks costs
one round trip per probe, not one per request. The probe runs on the API's read pool
(`store.read_pool`: autocommitted psycopg, no SQLAlchemy around one statement).

`HealthFastPath` answers exactly `GET /api/health` inside the root app's request-id
middleware, before the framework's layers (mounts, routing, CORS, security, dependency
solving, `JSONResponse`): on a 2-core machine those were about two thirds of a health
check's CPU (bench/README.md, issue 17). The response is the route's own, byte for byte and
header for header (tests/api/test_health_fast_path.py); anything unusual (an `Origin`, a
body, a `root_path`) takes the framework's way.

Other roles add their own probes to `Runtime.health_probes`; a probe reports, it never fails
the endpoint by raising. On the embedded server, `embeddedDatabase` reports its state and crash
history, and `database` says "restarting" while a supervisor brings a crashed server back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg.errors import UndefinedTable
from sqlalchemy.exc import ProgrammingError
from starlette.types import ASGIApp, Receive, Scope, Send

from cronicorn import __version__
from cronicorn.api.deps import read_pool_of
from cronicorn.api.fast_path import MOUNT, ApiHeaders, json_headers, plain_get, send_json
from cronicorn.runtime import Runtime
from cronicorn.store.coalesce import Coalesced
from cronicorn.store.read_pool import ReadPool, ReadStatement

router = APIRouter(tags=["health"])

DB_TIMEOUT_S = 2.0


_REVISION = ReadStatement("SELECT version_num FROM alembic_version", {})
PATH = "/health"


async def _database_revision(pool: ReadPool) -> str | None:
    """The schema revision, read by one autocommitted statement: one round trip, and every
    call really asks the database. None on a database that has no `alembic_version` table
    (nothing migrated yet)."""
    try:
        rows = await pool.fetch(_REVISION, {})
    except ProgrammingError as exc:
        if isinstance(exc.orig, UndefinedTable):
            return None
        raise
    return str(rows[0][0]) if rows else None


async def _revision_in_time(pool: ReadPool) -> str | None:
    """The probe with its deadline: one per probe, not one per request (a timer per health
    check was ~3 % of its CPU under load). A caller that joins a probe in flight waits at most
    as long; a probe stuck on a silent server is cancelled, and its connection with it."""
    async with asyncio.timeout(DB_TIMEOUT_S):
        return await _database_revision(pool)


def _shared_probe(api: FastAPI, runtime: Runtime) -> Coalesced[str | None]:
    """The API app's shared revision probe (one per app, made on first use)."""
    probe: Coalesced[str | None] | None = getattr(api.state, "health_probe", None)
    if probe is None:
        pool = read_pool_of(api, runtime)
        probe = Coalesced(lambda: _revision_in_time(pool), join_running=True)
        api.state.health_probe = probe
    return probe


def _server_report(report: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return report()
    except Exception as exc:  # a report, never a failure of the endpoint
        return {"state": "unknown", "error": type(exc).__name__}


@router.get(PATH, summary="Liveness and readiness of this API process")
async def health(request: Request) -> JSONResponse:
    body, status = await report(request.app)
    return JSONResponse(body, status_code=status)


async def report(api: FastAPI) -> tuple[dict[str, Any], int]:
    """The health body and its status (200, or 503 when not ready)."""
    runtime: Runtime = api.state.runtime
    body: dict[str, Any] = {"status": "ok", "version": __version__}
    ok = True
    try:
        revision = await _shared_probe(api, runtime)()
        body["database"] = "ok"
        current = revision == runtime.code_revision
        body["migrations"] = "current" if current else "pending"
        ok = current
    except Exception:
        body["database"] = "unreachable"
        body["migrations"] = "unknown"
        ok = False
    if runtime.database_server is not None:
        server = _server_report(runtime.database_server)
        body["embeddedDatabase"] = server
        if body["database"] == "ok" and server.get("state") == "restarting":
            # It answered, so recovery is over: the restarting process records that only
            # just after the server accepts connections.
            server.update(state="running", lastError=None)
        elif not ok and server.get("state") == "restarting":
            body["database"] = "restarting"
    for name, probe in list(runtime.health_probes.items()):  # roles add theirs meanwhile
        try:
            body[name] = await probe()
        except Exception as exc:
            body[name] = {"status": "error", "error": type(exc).__name__}
    if not ok:
        body["status"] = "unavailable"
    return body, 200 if ok else 503


class HealthFastPath:
    """Pure ASGI middleware of the root app (inside `RequestIdMiddleware`, so request ids,
    the log line and the metrics count are as for every route): `GET /api/health` with no
    `Origin` and no body gets the route's response without the layers between
    (`api.fast_path`)."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self.headers = ApiHeaders(api.state.runtime.settings)
        self.route = next(r for r in router.routes if getattr(r, "path", None) == PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != MOUNT + PATH or not plain_get(scope):
            await self.app(scope, receive, send)
            return
        body, status = await report(self.api)
        payload = json.dumps(
            body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        ).encode()  # as JSONResponse renders
        headers = self.headers.of(json_headers(payload), [])
        await send_json(send, scope, self.route, status, payload, headers)
