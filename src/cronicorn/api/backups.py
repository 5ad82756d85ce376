"""Admin-only backup endpoints: list, start one in the background, verify one.

Only `cronicorn.backup.service` is used (the api package never reaches into backup
internals); backup errors answer from the one error table (`error_table.py`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from cronicorn.api.deps import AdminDep, RuntimeDep
from cronicorn.backup import service

router = APIRouter(prefix="/backups", tags=["backups"])


@router.get("", summary="List backups (admin)")
async def list_backups(runtime: RuntimeDep, _admin: AdminDep) -> dict[str, Any]:
    items = await asyncio.to_thread(service.list_backups, runtime)
    return {"backups": items}


@router.post("", status_code=202, summary="Start a backup in the background (admin)")
async def start_backup(runtime: RuntimeDep, _admin: AdminDep) -> JSONResponse:
    name = await service.start_backup(runtime)
    return JSONResponse({"name": name, "status": "started"}, status_code=202)


@router.post("/{name}/verify", summary="Verify a backup by restoring it into a scratch database")
async def verify_backup(
    name: str,
    runtime: RuntimeDep,
    _admin: AdminDep,
    scratch: Literal["auto", "server", "embedded"] | None = None,
) -> dict[str, Any]:
    return await service.verify(runtime, name, scratch)
