"""`/api/devices`: the caller's live sessions (browsers and device-flow tokens), never their
tokens, and revoking one. Another user's session answers 404 like every other resource
(the reference's 403 let ids be probed)."""

from __future__ import annotations

from fastapi import APIRouter

from cronicorn.api.auth_common import session_json
from cronicorn.api.deps import ClockDep, ConnDep, UserDep
from cronicorn.api.errors import ApiError
from cronicorn.schemas.accounts import DeviceList, Success
from cronicorn.store import login_sessions

router = APIRouter(prefix="/devices", tags=["Devices"])


@router.get("", response_model=DeviceList, summary="The caller's sessions, newest first")
async def list_devices(principal: UserDep, conn: ConnDep, clock: ClockDep) -> DeviceList:
    rows = await login_sessions.list_for_user(conn, principal.user_id, clock())
    current = principal.credential_id if principal.via != "api_key" else None
    return DeviceList.model_validate(
        {"devices": [session_json(row, current=row.id == current) for row in rows]}
    )


@router.delete(
    "/{session_id}", response_model=Success, summary="Revoke one of the caller's sessions"
)
async def revoke_device(
    session_id: str, principal: UserDep, conn: ConnDep, clock: ClockDep
) -> Success:
    if not await login_sessions.revoke(conn, principal.user_id, session_id, clock()):
        raise ApiError(404, "Session not found")
    return Success(success=True)
