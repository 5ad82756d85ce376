"""`GET /metrics`: Prometheus text exposition of this process's metrics (scheduler executions,
lateness, claims, in-flight runs, lost workers when the scheduler runs in this process).

Served outside `/api` (no authentication, like most scrape targets): it exposes counts and
timings only, never endpoint names, URLs or user data.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
