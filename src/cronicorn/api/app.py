"""The REST API as a FastAPI sub-application mounted at `/api` by `cronicorn.app`."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from cronicorn import __version__
from cronicorn.api import (
    ai_sessions,
    api_keys,
    audit,
    auth,
    channels,
    dashboard,
    device_flow,
    devices,
    docs,
    endpoints,
    errors,
    github,
    health,
    hints,
    jobs,
    runs,
    security,
    signing_keys,
    suggestions,
    transfer,
    usage,
    users,
)
from cronicorn.api.backups import router as backups_router
from cronicorn.api.errors import install_error_mapping
from cronicorn.runtime import Runtime

NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's native OpenTelemetry, off for our apps (the root's too): nothing here configures
OpenTelemetry, and each app asked for the global providers on every request (~26 us per app,
as much as a middleware layer or two; bench/README.md, issue 17)."""


def create_api(runtime: Runtime) -> FastAPI:
    api = FastAPI(
        title="Cronicorn API",
        version=__version__,
        openapi_url="/doc",
        docs_url=None,
        redoc_url=None,
        telemetry=NO_TELEMETRY,
    )
    api.state.runtime = runtime
    errors.install(api)
    security.install(api, runtime.settings)
    api.include_router(health.router)
    install_error_mapping(api)
    docs.install(api)
    # The hot resource routes first: the router tries each included router in turn, ~1 %
    # of a list request's CPU per router passed (issue 17); no path of the ones after
    # (/auth, /users, /devices) can match theirs (/jobs, /endpoints, /runs).
    for module in (
        jobs,
        endpoints,
        hints,
        runs,
        auth,
        api_keys,
        device_flow,
        github,
        users,
        devices,
        ai_sessions,
        suggestions,
        dashboard,
        signing_keys,
        usage,
        transfer,
        channels,
        audit,
        docs,
    ):
        api.include_router(module.router)
    api.include_router(backups_router)  # admin-only; backup work goes through backup.service
    return api
