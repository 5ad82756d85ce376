"""`GET /api/export` and `POST /api/import`: the caller's jobs and endpoints as one document
(the rules are in `services/transfer.py`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from cronicorn.api.deps import ConnDep, QuotasDep, UserDep
from cronicorn.api.endpoints import DispatcherDep
from cronicorn.api.params import NowDep
from cronicorn.schemas.transfer import ImportReport, TransferDocument
from cronicorn.services.transfer import checked_by, export_document, import_document

router = APIRouter(tags=["Import/Export"])


# -- routes ---------------------------------------------------------------------------------
@router.get(
    "/export",
    response_model=TransferDocument,
    summary="Export jobs and endpoints as one document",
    description="Archived jobs and endpoints are left out; unset fields are omitted.",
)
async def export_route(user: UserDep, conn: ConnDep, now: NowDep) -> JSONResponse:
    return JSONResponse(await export_document(conn, user.user_id, now))


@router.post(
    "/import",
    response_model=ImportReport,
    summary="Import jobs and endpoints (idempotent by name)",
    description="Creates what is missing and updates what differs; never deletes. All or "
    "nothing. With `dryRun=true` nothing is written and the report says what would change.",
)
async def import_route(
    body: TransferDocument,
    user: UserDep,
    conn: ConnDep,
    dispatcher: DispatcherDep,
    quotas: QuotasDep,
    now: NowDep,
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
) -> ImportReport:
    return await import_document(
        conn,
        user.user_id,
        body,
        now,
        check_url=checked_by(dispatcher),
        dry_run=dry_run,
        quotas=quotas,
    )
