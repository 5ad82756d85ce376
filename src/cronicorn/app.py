"""Compose the ASGI application: the API under `/api`, MCP at `/mcp`, the web pages at `/`,
and the background roles (scheduler, planner) that `cronicorn up` runs in the same process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from fastapi import FastAPI
from starlette.types import ASGIApp

from cronicorn.api import metrics as metrics_route
from cronicorn.api.app import NO_TELEMETRY, create_api
from cronicorn.api.deps import close_credential_cache, close_read_pool
from cronicorn.api.endpoints import close_dispatcher
from cronicorn.api.errors import envelope
from cronicorn.api.fast_lists import ListsFastPath
from cronicorn.api.fast_path import MOUNT as API_MOUNT
from cronicorn.api.health import HealthFastPath
from cronicorn.api.middleware import RequestIdMiddleware
from cronicorn.logs import get_logger
from cronicorn.mcp.http import McpEndpoint
from cronicorn.runtime import Runtime
from cronicorn.web.app import close_web, create_web

log = get_logger("cronicorn.app")

Role = Callable[[Runtime, asyncio.Event], Awaitable[None]]
"""A background role: runs until the event is set, then drains and returns."""

RESTART_DELAY_S = 2.0


async def supervise(name: str, role: Role, runtime: Runtime, stop: asyncio.Event) -> None:
    """Keep a role alive: a crash is logged and the role restarts, the process stays up."""
    while not stop.is_set():
        try:
            await role(runtime, stop)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("role_crashed", role=name, restart_in_s=RESTART_DELAY_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RESTART_DELAY_S)


class RootApp(FastAPI):
    """The root app, with its hot paths before the framework's own layers.

    Starlette puts `ServerErrorMiddleware` outermost and FastAPI adds its telemetry and
    body-limit middleware inside it, around every middleware added with `add_middleware`;
    on `GET /api/health` those layers were ~5 % of the CPU (bench/README.md, issue 17).
    Here `RequestIdMiddleware` wraps everything (a 500 of `ServerErrorMiddleware` carries the
    request id and is logged and counted like any answer) and each fast path sits just
    inside it: request ids, the log line and metrics stay the same for every response.
    """

    fast_paths: Sequence[Callable[[ASGIApp], ASGIApp]] = ()
    """Outermost first; each takes the app below it."""

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        for wrap in reversed(self.fast_paths):
            stack = wrap(stack)
        return RequestIdMiddleware(stack)


def create_app(runtime: Runtime, roles: Sequence[tuple[str, Role]] = ()) -> FastAPI:
    api = create_api(runtime)
    mcp = McpEndpoint(runtime)
    web = create_web(runtime)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(supervise(name, role, runtime, stop), name=f"role:{name}")
            for name, role in roles
        ]
        try:
            async with mcp.running():  # MCP at /mcp: its task group lives as long as the app
                yield
        finally:
            stop.set()
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=runtime.settings.shutdown_timeout_s)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            # Mounted sub-apps get no lifespan events: close what the API opened here.
            await close_dispatcher(api)
            await close_credential_cache(api)
            await close_read_pool(api)
            await close_web(web)
            await runtime.close()

    app = RootApp(
        lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None, telemetry=NO_TELEMETRY
    )
    app.state.runtime = runtime
    app.mount(API_MOUNT, api)  # the prefix the fast paths answer under
    app.router.routes.append(mcp.route())  # POST /mcp (MCP over streamable HTTP)
    app.include_router(metrics_route.router)  # GET /metrics (Prometheus)

    @app.exception_handler(404)
    async def _not_found(*_: object) -> object:
        return envelope(404, "not_found", "Not found")

    app.mount("/", web)  # the pages (dashboard, login, /device…): every path not matched above

    # GET /api/health and the hot lists past the framework's layers (issue 17).
    app.fast_paths = (
        lambda below: HealthFastPath(below, api=api),
        lambda below: ListsFastPath(below, api=api),
    )
    return app
