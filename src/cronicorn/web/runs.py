"""A run's page: summary, the request it made, and the response body viewer (JSON
pretty-printed, anything else as text; always escaped: response bodies are hostile input)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cronicorn.store import runs as run_store
from cronicorn.web.deps import ConnDep, ViewerDep, require_id
from cronicorn.web.filters import pretty_json
from cronicorn.web.templating import render

router = APIRouter()


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str, viewer: ViewerDep, conn: ConnDep) -> Response:
    run = await run_store.get_detail(conn, viewer.user_id, require_id(run_id, "Run"))
    if run.response_body is not None:
        body, kind = pretty_json(run.response_body), "JSON"
    elif run.response_text is not None:
        body, kind = run.response_text, "Text"
    else:
        body, kind = None, None
    return render(
        request,
        "run.html",
        viewer=viewer,
        title=f"Run of {run.endpoint_name}",
        run=run,
        body=body,
        body_kind=kind,
    )
