"""`/api/auth/api-key/*`: the caller's API keys. The key is in the create response only; lists
show its first characters (`prefix`, also as better-auth's `start`). Revoking is immediate.

Paths: `POST create`, `GET list`, `POST update {keyId, name}` (rename), and revoke as
`POST delete {keyId}` (better-auth's) or `DELETE /api/auth/api-key/{id}`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter

from cronicorn.api.deps import ClockDep, ConnDep, UserDep
from cronicorn.api.errors import ApiError
from cronicorn.auth import service
from cronicorn.auth.errors import ApiKeyNotFound
from cronicorn.schemas.accounts import (
    ApiKey,
    CreatedApiKey,
    CreateKey,
    DeleteKey,
    Success,
    UpdateKey,
)
from cronicorn.schemas.common import iso_ms
from cronicorn.store import api_keys
from cronicorn.store.api_keys import ApiKeyRow

router = APIRouter(prefix="/auth/api-key", tags=["API keys"])


def key_json(row: ApiKeyRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "start": row.prefix,
        "enabled": row.revoked_at is None,
        "createdAt": iso_ms(row.created_at),
        "lastUsedAt": iso_ms(row.last_used_at) if row.last_used_at else None,
        "expiresAt": iso_ms(row.expires_at) if row.expires_at else None,
    }


@router.post(
    "/create", response_model=CreatedApiKey, summary="Create an API key (the key is shown once)"
)
async def create_key(
    body: CreateKey, principal: UserDep, conn: ConnDep, clock: ClockDep
) -> dict[str, Any]:
    expires = timedelta(seconds=body.expires_in) if body.expires_in else None
    key, row = await service.issue_api_key(
        conn, principal.user_id, name=body.name, now=clock(), expires_in=expires
    )
    return {**key_json(row), "key": key}


@router.get(
    "/list",
    response_model=list[ApiKey],
    summary="The caller's API keys (never the keys themselves)",
)
async def list_keys(principal: UserDep, conn: ConnDep) -> list[dict[str, Any]]:
    return [key_json(row) for row in await api_keys.list_for_user(conn, principal.user_id)]


@router.post("/update", response_model=ApiKey, summary="Rename an API key")
async def update_key(body: UpdateKey, principal: UserDep, conn: ConnDep) -> dict[str, Any]:
    row = await api_keys.rename(conn, body.key_id, body.name.strip(), user_id=principal.user_id)
    if row is None:
        raise ApiError(404, "API key not found")
    return key_json(row)


async def _revoke(key_id: str, user_id: str, conn: ConnDep, clock: ClockDep) -> dict[str, bool]:
    try:
        await service.revoke_api_key(conn, key_id, clock(), user_id=user_id)
    except ApiKeyNotFound:
        raise ApiError(404, "API key not found") from None
    return {"success": True}


@router.post("/delete", response_model=Success, summary="Revoke an API key")
async def delete_key_post(
    body: DeleteKey, principal: UserDep, conn: ConnDep, clock: ClockDep
) -> dict[str, bool]:
    return await _revoke(body.key_id, principal.user_id, conn, clock)


@router.delete("/{key_id}", response_model=Success, summary="Revoke an API key")
async def delete_key(
    key_id: str, principal: UserDep, conn: ConnDep, clock: ClockDep
) -> dict[str, bool]:
    return await _revoke(key_id, principal.user_id, conn, clock)
