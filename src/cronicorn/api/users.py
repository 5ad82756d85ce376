"""`/api/users` (administrators only): create, list, disable and re-enable users. Disabling
takes effect on the next request: authentication checks the user on every call."""

from __future__ import annotations

from fastapi import APIRouter

from cronicorn.api.deps import AdminDep, ClockDep, ConnDep
from cronicorn.auth import service
from cronicorn.auth.passwords import random_password
from cronicorn.schemas.accounts import CreatedUser, NewUser, UserList, UserView
from cronicorn.services import accounts

router = APIRouter(prefix="/users", tags=["Users"])


@router.get("", response_model=UserList, summary="Every user")
async def list_users(_: AdminDep, conn: ConnDep) -> UserList:
    return UserList(users=await accounts.list_users(conn))


@router.post(
    "",
    status_code=201,
    response_model=CreatedUser,
    summary="Create a user (a generated password is shown once)",
)
async def create_user(body: NewUser, _: AdminDep, conn: ConnDep) -> CreatedUser:
    generated = random_password() if body.password is None else None
    row = await service.create_user(
        conn,
        email=body.email,
        password=body.password or generated,
        name=body.name,
        is_admin=body.is_admin,
    )
    return CreatedUser(user=UserView.of(row), password=generated)


@router.get("/{user_id}", response_model=UserView, summary="One user")
async def get_user(user_id: str, _: AdminDep, conn: ConnDep) -> UserView:
    return await accounts.get_user(conn, user_id)


@router.post(
    "/{user_id}/disable",
    response_model=UserView,
    summary="Disable a user (their sessions and keys stop at once)",
)
async def disable_user(user_id: str, admin: AdminDep, conn: ConnDep, clock: ClockDep) -> UserView:
    return await accounts.set_disabled(conn, user_id, disabled=True, now=clock(), by=admin.user_id)


@router.post("/{user_id}/enable", response_model=UserView, summary="Re-enable a disabled user")
async def enable_user(user_id: str, admin: AdminDep, conn: ConnDep, clock: ClockDep) -> UserView:
    return await accounts.set_disabled(conn, user_id, disabled=False, now=clock(), by=admin.user_id)
