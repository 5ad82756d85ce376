"""`GET /api/health`: database reachable (2 s budget) and schema at the code's revision.

Concurrent requests share one database probe (`store.coalesce`, `join_running`): each gets
the answer of the probe in flight or of one it starts, an answer that came after the request
did, so every response still proves the database answers; a burst of health checks costs
one round trip per probe, not one per request (each with a checkout and an isolation switch).

Other roles add their own probes to `Runtime.health_probes`; a probe reports, it never fails
the endpoint by raising. On the embedded server, `embeddedDatabase` reports its state and crash
history, and `database` says "restarting" while a supervisor brings a crashed server back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from psycopg.errors import UndefinedTable
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from cronicorn import __version__
from cronicorn.runtime import Runtime
from cronicorn.store.coalesce import Coalesced

router = APIRouter(tags=["health"])

DB_TIMEOUT_S = 2.0


_REVISION = text("SELECT version_num FROM alembic_version")


async def _database_revision(runtime: Runtime) -> str | None:
    """The schema revision, read by one autocommitted statement: one round trip (no BEGIN,
    no ROLLBACK), and every call really asks the database. None on a database that has no
    `alembic_version` table (nothing migrated yet)."""
    async with runtime.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            row = (await conn.execute(_REVISION)).first()
        except ProgrammingError as exc:
            if isinstance(exc.orig, UndefinedTable):
                return None
            raise
        return str(row[0]) if row else None


def _shared_probe(request: Request, runtime: Runtime) -> Coalesced[str | None]:
    """The app's shared revision probe (one per app, made on first use)."""
    probe: Coalesced[str | None] | None = getattr(request.app.state, "health_probe", None)
    if probe is None:
        probe = Coalesced(lambda: _database_revision(runtime), join_running=True)
        request.app.state.health_probe = probe
    return probe


def _server_report(report: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return report()
    except Exception as exc:  # a report, never a failure of the endpoint
        return {"state": "unknown", "error": type(exc).__name__}


@router.get("/health", summary="Liveness and readiness of this API process")
async def health(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    body: dict[str, Any] = {"status": "ok", "version": __version__}
    ok = True
    try:
        async with asyncio.timeout(DB_TIMEOUT_S):
            revision = await _shared_probe(request, runtime)()
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
    return JSONResponse(body, status_code=200 if ok else 503)
