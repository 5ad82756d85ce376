"""The Jinja environment (autoescaped everywhere) and `render`, the one way a page answers.

Templates live in `web/templates/`: pages extend `base.html`; `partials/` holds the fragments
htmx swaps in (and pages include, so one template renders both). `render` adds the request,
the viewer and `static_url` to every context.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader

from cronicorn.web.assets import static_url
from cronicorn.web.deps import CSRF_FIELD, Viewer
from cronicorn.web.filters import FILTERS

env = Environment(
    loader=PackageLoader("cronicorn.web", "templates"),
    autoescape=True,  # every template, whatever its name
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # package data: no file checks on every render
)
env.filters.update(FILTERS)
env.globals.update(static_url=static_url, csrf_field=CSRF_FIELD)


def render(
    request: Request,
    template: str,
    *,
    viewer: Viewer | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    html = env.get_template(template).render(
        request=request,
        viewer=viewer,
        path=request.url.path,
        htmx=request.headers.get("hx-request") == "true",
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=headers)
