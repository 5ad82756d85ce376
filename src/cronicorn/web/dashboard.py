"""`/`: the dashboard. For now a summary with links; the charts, counters and activity
timeline are built on this page next (issue 12)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cronicorn.store import jobs as job_store
from cronicorn.web.deps import ConnDep, ViewerDep
from cronicorn.web.templating import render

router = APIRouter()


@router.get("/")
async def dashboard(request: Request, viewer: ViewerDep, conn: ConnDep) -> Response:
    jobs = await job_store.list_with_counts(conn, viewer.user_id)
    return render(
        request,
        "dashboard.html",
        viewer=viewer,
        title="Dashboard",
        job_count=sum(1 for job, _ in jobs if job.status != "archived"),
        endpoint_count=sum(n for job, n in jobs if job.status != "archived"),
    )
