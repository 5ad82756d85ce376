"""The AI planner's side of an endpoint: `/endpoints/{id}/ai` (its sessions, newest first,
and its suggestions with apply/dismiss) and `/ai-sessions/{id}` (one session: the reasoning,
each tool call with its arguments and result, tokens, warnings).

Applying a suggestion calls `store.suggestions.apply` as `/api/suggestions/{id}/apply`
does, with the operator's quotas: the same checks as a hint written by hand. A suggestion
that lapsed or was decided meanwhile, or no longer fits the endpoint's bounds, is explained
on the page (409/422), never a 500.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from cronicorn.store import ai_sessions, wakeups
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import suggestions as suggestion_store
from cronicorn.store.errors import Conflict, Invalid, NotFound
from cronicorn.web.deps import (
    ClockDep,
    ConnDep,
    FormDep,
    RuntimeDep,
    ViewerDep,
    count_param,
    require_id,
)
from cronicorn.web.settings import act_as
from cronicorn.web.templating import render

router = APIRouter()
PAGE = 20
DONE = {
    "applied": ("Suggestion applied: the endpoint's schedule follows it now.", "ok"),
    "dismissed": ("Suggestion dismissed.", "ok"),
    "stale": ("That suggestion is no longer pending (applied, dismissed or lapsed).", "bad"),
    "unfit": ("That suggestion no longer fits the endpoint's limits; it was not applied.", "bad"),
}


@router.get("/endpoints/{endpoint_id}/ai")
async def endpoint_ai(
    endpoint_id: str,
    request: Request,
    viewer: ViewerDep,
    conn: ConnDep,
    clock: ClockDep,
) -> Response:
    now = clock()
    endpoint = await endpoint_store.get(conn, viewer.user_id, require_id(endpoint_id, "Endpoint"))
    offset = count_param(request.query_params.get("offset", "0"), 100_000)
    sessions, total = await ai_sessions.list_for_endpoint(
        conn, viewer.user_id, endpoint.id, limit=PAGE, offset=offset
    )
    suggestions = await suggestion_store.list_for_endpoint(
        conn, viewer.user_id, endpoint.id, now, limit=20
    )
    flash, kind = DONE.get(request.query_params.get("done", ""), (None, "ok"))
    return render(
        request,
        "ai_sessions.html",
        viewer=viewer,
        title=f"AI planner · {endpoint.name}",
        endpoint=endpoint,
        sessions=sessions,
        total=total,
        offset=offset,
        page=PAGE,
        suggestions=suggestions,
        flash=flash,
        flash_kind=kind,
    )


@router.get("/ai-sessions/{session_id}")
async def ai_session(
    session_id: str, request: Request, viewer: ViewerDep, conn: ConnDep
) -> Response:
    session = await ai_sessions.get(conn, viewer.user_id, require_id(session_id, "Session"))
    return render(
        request,
        "ai_session.html",
        viewer=viewer,
        title=f"AI session · {session.endpoint_name}",
        session=session,
    )


def _back(endpoint_id: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"/endpoints/{endpoint_id}/ai?done={done}#suggestions", 303)


@router.post("/suggestions/{suggestion_id}/{decision}")
async def decide(
    suggestion_id: str,
    decision: str,
    viewer: ViewerDep,
    form: FormDep,
    conn: ConnDep,
    clock: ClockDep,
    runtime: RuntimeDep,
) -> Response:
    """Apply or dismiss; the form names its endpoint so a refusal can go back to it."""
    if decision not in {"apply", "dismiss"}:
        raise NotFound("Page")
    sid = require_id(suggestion_id, "Suggestion")
    endpoint_id = require_id(form.get("endpoint", ""), "Endpoint")
    now = clock()
    await act_as(conn, viewer)
    try:
        if decision == "apply":
            row = await suggestion_store.apply(
                conn, viewer.user_id, sid, now, quotas=runtime.settings.quotas
            )
        else:
            row = await suggestion_store.dismiss(conn, viewer.user_id, sid, now)
    except Conflict:
        await conn.rollback()
        return _back(endpoint_id, "stale")
    except Invalid:
        await conn.rollback()
        return _back(endpoint_id, "unfit")
    await wakeups.endpoint_changed(conn, viewer.user_id, row.endpoint_id)
    return _back(row.endpoint_id, "applied" if decision == "apply" else "dismissed")
