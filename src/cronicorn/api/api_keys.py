"""`/api/auth/api-key/*`: the caller's API keys. The key is in the create response only; lists
show its first characters (`prefix`, also as better-auth's `start`). Revoking is immediate.

Paths: `POST create`, `GET list`, `POST update {keyId, name}` (rename), and revoke as
`POST delete {keyId}` (better-auth's) or `DELETE /api/auth/api-key/{id}`.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from cronicorn.api.deps import ClockDep, ConnDep, UserDep
from cronicorn.schemas.accounts import (
    ApiKey,
    CreatedApiKey,
    CreateKey,
    DeleteKey,
    Success,
    UpdateKey,
)
from cronicorn.services import accounts

router = APIRouter(prefix="/auth/api-key", tags=["API keys"])


@router.post(
    "/create", response_model=CreatedApiKey, summary="Create an API key (the key is shown once)"
)
async def create_key(
    body: CreateKey, principal: UserDep, conn: ConnDep, clock: ClockDep
) -> CreatedApiKey:
    expires = timedelta(seconds=body.expires_in) if body.expires_in else None
    return await accounts.create_api_key(
        conn, principal.user_id, name=body.name, now=clock(), expires_in=expires
    )


@router.get(
    "/list",
    response_model=list[ApiKey],
    summary="The caller's API keys (never the keys themselves)",
)
async def list_keys(principal: UserDep, conn: ConnDep) -> list[ApiKey]:
    return await accounts.list_api_keys(conn, principal.user_id)


@router.post("/update", response_model=ApiKey, summary="Rename an API key")
async def update_key(body: UpdateKey, principal: UserDep, conn: ConnDep) -> ApiKey:
    return await accounts.rename_api_key(conn, principal.user_id, body.key_id, body.name)


async def _revoke(key_id: str, user_id: str, conn: ConnDep, clock: ClockDep) -> Success:
    await accounts.revoke_api_key(conn, user_id, key_id, clock())
    return Success(success=True)


@router.post("/delete", response_model=Success, summary="Revoke an API key")
async def delete_key_post(
    body: DeleteKey, principal: UserDep, conn: ConnDep, clock: ClockDep
) -> Success:
    return await _revoke(body.key_id, principal.user_id, conn, clock)


@router.delete("/{key_id}", response_model=Success, summary="Revoke an API key")
async def delete_key(key_id: str, principal: UserDep, conn: ConnDep, clock: ClockDep) -> Success:
    return await _revoke(key_id, principal.user_id, conn, clock)
