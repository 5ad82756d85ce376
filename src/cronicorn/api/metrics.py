"""`GET /metrics`: Prometheus text exposition: HTTP requests by route, plus the scheduler's
executions, lateness, claims, in-flight runs and lost workers when it runs in this process.

Served outside `/api` (no authentication, like most scrape targets): it exposes counts and
timings only, never endpoint names, URLs or user data. Requests are labelled by their route
template (`/api/jobs/{id}`), never the raw path, and unmatched paths share one label, so a
scanner cannot grow the series without bound.

Under `cronicorn api --workers N` every worker records into `PROMETHEUS_MULTIPROC_DIR` (set up
by `workers.py`) and whichever worker answers the scrape reports the sum over all of them.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"

REQUESTS = Counter(
    "cronicorn_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "cronicorn_http_request_duration_seconds",
    "Time from receiving a request to the end of its response, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

router = APIRouter()


# Label children by (method, route, status): `labels()` takes a lock and builds a key on every
# call, a cost paid on every request. Bounded like the series themselves (route templates).
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    pair = _children.get(key)
    if pair is None:
        pair = _children[key] = (
            REQUESTS.labels(method, route, str(status)),
            LATENCY.labels(method, route),
        )
    pair[0].inc()
    pair[1].observe(seconds)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    registry = REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
