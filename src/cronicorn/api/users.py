"""`/api/users` (administrators only): create, list, disable and re-enable users. Disabling
takes effect on the next request: authentication checks the user on every call."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from cronicorn.api.auth_common import user_json
from cronicorn.api.deps import AdminDep, ClockDep, ConnDep
from cronicorn.api.errors import ApiError
from cronicorn.auth import service
from cronicorn.auth.errors import UserNotFound
from cronicorn.auth.passwords import random_password
from cronicorn.schemas.common import NonBlank, Text
from cronicorn.store import users

router = APIRouter(prefix="/users", tags=["Users"])


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    email: Text = Field(max_length=320)
    name: NonBlank | None = Field(default=None, max_length=200)
    password: Text | None = Field(
        default=None, max_length=1024, description="omit to generate one (returned once)"
    )
    is_admin: bool = Field(default=False, alias="isAdmin")


@router.get("", summary="Every user")
async def list_users(_: AdminDep, conn: ConnDep) -> dict[str, Any]:
    return {"users": [user_json(row) for row in await users.list_all(conn)]}


@router.post("", status_code=201, summary="Create a user (a generated password is shown once)")
async def create_user(body: NewUser, _: AdminDep, conn: ConnDep) -> dict[str, Any]:
    generated = random_password() if body.password is None else None
    row = await service.create_user(
        conn,
        email=body.email,
        password=body.password or generated,
        name=body.name,
        is_admin=body.is_admin,
    )
    out = {"user": user_json(row)}
    return {**out, "password": generated} if generated else out


@router.get("/{user_id}", summary="One user")
async def get_user(user_id: str, _: AdminDep, conn: ConnDep) -> dict[str, Any]:
    row = await users.get_by_id(conn, user_id)
    if row is None:
        raise ApiError(404, "User not found")
    return user_json(row)


async def _set_disabled(
    user_id: str, admin_id: str, conn: ConnDep, clock: ClockDep, *, disabled: bool
) -> dict[str, Any]:
    if disabled and user_id == admin_id:
        raise ApiError(409, "You cannot disable your own account", code="conflict")
    try:
        row = await service.set_disabled(conn, user_id, disabled=disabled, now=clock())
    except UserNotFound:
        raise ApiError(404, "User not found") from None
    return user_json(row)


@router.post("/{user_id}/disable", summary="Disable a user (their sessions and keys stop at once)")
async def disable_user(
    user_id: str, admin: AdminDep, conn: ConnDep, clock: ClockDep
) -> dict[str, Any]:
    return await _set_disabled(user_id, admin.user_id, conn, clock, disabled=True)


@router.post("/{user_id}/enable", summary="Re-enable a disabled user")
async def enable_user(
    user_id: str, admin: AdminDep, conn: ConnDep, clock: ClockDep
) -> dict[str, Any]:
    return await _set_disabled(user_id, admin.user_id, conn, clock, disabled=False)
