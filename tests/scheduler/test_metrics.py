"""`/metrics` on the API, and the scheduler registered as a role of `cronicorn up`."""

from __future__ import annotations

import aiohttp

from cronicorn import cli
from cronicorn.app import create_app
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from cronicorn.scheduler.role import scheduler_role
from support import serve_app


async def test_the_api_serves_prometheus_metrics(database_url: str) -> None:
    settings = load_settings(DATABASE_URL=database_url, AUTH_SECRET="s" * 40)
    app = create_app(Runtime.create(settings, database_url))
    async with serve_app(app) as base, aiohttp.ClientSession() as http:
        resp = await http.get(f"{base}/metrics")
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        body = await resp.text()
    for name in (
        "cronicorn_scheduler_executions_total",
        "cronicorn_scheduler_lateness_seconds_bucket",
        "cronicorn_scheduler_claim_batch_size_bucket",
        "cronicorn_scheduler_in_flight_runs",
        "cronicorn_scheduler_worker_lost_total",
    ):
        assert name in body


def test_up_and_scheduler_run_the_scheduler_role() -> None:
    assert ("scheduler", scheduler_role) in cli._scheduler_roles()
    assert ("scheduler", scheduler_role) in cli._background_roles()
