"""`/api/auth/api-key/*`: the caller's API keys. The key is in the create response only; lists
show its first characters (`prefix`, also as better-auth's `start`). Revoking is immediate.

Paths: `POST create`, `GET list`, and revoke as `POST delete {keyId}` (better-auth's) or
`DELETE /api/auth/api-key/{id}`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from cronicorn.api.auth_common import invalid_input
from cronicorn.api.deps import ClockDep, ConnDep, UserDep
from cronicorn.api.errors import ApiError
from cronicorn.api.schemas.common import Text, iso_ms
from cronicorn.auth import service
from cronicorn.auth.errors import ApiKeyNotFound, InvalidInput
from cronicorn.store import api_keys
from cronicorn.store.api_keys import ApiKeyRow

router = APIRouter(prefix="/auth/api-key", tags=["API keys"])

MAX_EXPIRES_IN_S = 10 * 365 * 24 * 3600


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Text = Field(min_length=1, max_length=200)
    expires_in: int | None = Field(
        default=None, alias="expiresIn", gt=0, le=MAX_EXPIRES_IN_S, description="seconds"
    )


class DeleteKey(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key_id: Text = Field(alias="keyId", max_length=100)


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


@router.post("/create", summary="Create an API key (the key is shown once)")
async def create_key(
    body: CreateKey, principal: UserDep, conn: ConnDep, clock: ClockDep
) -> dict[str, Any]:
    expires = timedelta(seconds=body.expires_in) if body.expires_in else None
    try:
        key, row = await service.issue_api_key(
            conn, principal.user_id, name=body.name, now=clock(), expires_in=expires
        )
    except InvalidInput as exc:
        raise invalid_input(exc) from None
    return {**key_json(row), "key": key}


@router.get("/list", summary="The caller's API keys (never the keys themselves)")
async def list_keys(principal: UserDep, conn: ConnDep) -> list[dict[str, Any]]:
    return [key_json(row) for row in await api_keys.list_for_user(conn, principal.user_id)]


async def _revoke(key_id: str, user_id: str, conn: ConnDep, clock: ClockDep) -> dict[str, bool]:
    try:
        await service.revoke_api_key(conn, key_id, clock(), user_id=user_id)
    except ApiKeyNotFound:
        raise ApiError(404, "API key not found") from None
    return {"success": True}


@router.post("/delete", summary="Revoke an API key")
async def delete_key_post(
    body: DeleteKey, principal: UserDep, conn: ConnDep, clock: ClockDep
) -> dict[str, bool]:
    return await _revoke(body.key_id, principal.user_id, conn, clock)


@router.delete("/{key_id}", summary="Revoke an API key")
async def delete_key(
    key_id: str, principal: UserDep, conn: ConnDep, clock: ClockDep
) -> dict[str, bool]:
    return await _revoke(key_id, principal.user_id, conn, clock)
