"""Admin-only backup endpoints: list, start one in the background, verify one.

Only `cronicorn.backup.service` is used (the api package never reaches into backup
internals); backup errors are mapped to the API envelope here, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from cronicorn.api.deps import AdminDep, RuntimeDep
from cronicorn.api.errors import ApiError
from cronicorn.backup import service

router = APIRouter(prefix="/backups", tags=["backups"])

T = TypeVar("T")


async def _mapped(work: Awaitable[T]) -> T:
    try:
        return await work
    except service.BackupNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except service.BackupBusy as exc:
        raise ApiError(409, str(exc)) from None
    except service.BackupError as exc:
        raise ApiError(503, str(exc), code="backup_failed") from None


@router.get("", summary="List backups (admin)")
async def list_backups(runtime: RuntimeDep, _admin: AdminDep) -> dict[str, Any]:
    items = await asyncio.to_thread(service.list_backups, runtime)
    return {"backups": items}


@router.post("", status_code=202, summary="Start a backup in the background (admin)")
async def start_backup(runtime: RuntimeDep, _admin: AdminDep) -> JSONResponse:
    name = await _mapped(service.start_backup(runtime))
    return JSONResponse({"name": name, "status": "started"}, status_code=202)


@router.post("/{name}/verify", summary="Verify a backup by restoring it into a scratch database")
async def verify_backup(
    name: str,
    runtime: RuntimeDep,
    _admin: AdminDep,
    scratch: Literal["auto", "server", "embedded"] | None = None,
) -> dict[str, Any]:
    return await _mapped(service.verify(runtime, name, scratch))
