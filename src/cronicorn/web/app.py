"""The pages as one FastAPI sub-app, mounted at `/` after `/api` (app.py): the dashboard
owns every path the API does not.

Errors are mapped once, here: a missing session redirects to /login (htmx requests get
`HX-Redirect`), a refused form is a 403 page, `NotFound` (also another user's id) a 404 page,
any other HTTP error its own page. Everything the pages show goes through autoescaped Jinja.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from cronicorn.dispatch.lazy import close_dispatcher_on
from cronicorn.runtime import Runtime
from cronicorn.store.errors import NotFound
from cronicorn.web import (
    admin,
    ai,
    assets,
    channels,
    device,
    endpoints,
    home,
    jobs,
    live,
    login,
    runs,
    settings,
)
from cronicorn.web.deps import FormRefused, LoginRequired, login_url
from cronicorn.web.security import PageSecurityMiddleware
from cronicorn.web.templating import render

PAGES = (login, home, jobs, endpoints, runs, live, settings, channels, ai, admin)


def create_web(runtime: Runtime) -> FastAPI:
    web = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    web.state.runtime = runtime
    web.state.live = live.LiveHub(runtime.database_url)
    web.include_router(assets.router)
    web.include_router(device.router, prefix="/device")
    for module in PAGES:
        web.include_router(module.router)
    _map_errors(web)
    web.add_middleware(PageSecurityMiddleware, settings=runtime.settings)
    return web


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    return render(request, "error.html", status_code=status, title=title, message=message)


def _map_errors(web: FastAPI) -> None:
    @web.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        target = login_url(exc.next_path)
        if request.headers.get("hx-request") == "true":
            return Response(status_code=401, headers={"hx-redirect": target})
        return RedirectResponse(target, status_code=303)

    @web.exception_handler(FormRefused)
    async def _refused(request: Request, exc: FormRefused) -> Response:
        return _error_page(request, 403, "Form refused", str(exc))

    @web.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return _error_page(request, 404, "Not found", f"{exc.what} not found.")

    @web.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            return _error_page(request, 404, "Not found", "There is no page here.")
        return _error_page(request, exc.status_code, "Error", str(exc.detail))


async def close_web(web: FastAPI) -> None:
    """Close what the pages opened (their dispatcher): mounted apps get no lifespan."""
    await close_dispatcher_on(web.state)
