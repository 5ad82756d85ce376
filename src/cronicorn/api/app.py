"""The REST API as a FastAPI sub-application mounted at `/api` by `cronicorn.app`."""

from __future__ import annotations

from fastapi import FastAPI

from cronicorn import __version__
from cronicorn.api import errors, health
from cronicorn.runtime import Runtime


def create_api(runtime: Runtime) -> FastAPI:
    api = FastAPI(
        title="Cronicorn API",
        version=__version__,
        openapi_url="/doc",
        docs_url=None,
        redoc_url=None,
    )
    api.state.runtime = runtime
    errors.install(api)
    api.include_router(health.router)
    return api
