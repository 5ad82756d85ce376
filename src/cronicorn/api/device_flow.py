"""`/api/auth/device/*`: the OAuth device flow (RFC 8628) for CLIs and the MCP server.

`code` and `token` are for the client and take JSON or form bodies; the token endpoint answers
errors in OAuth's own shape (`{"error", "error_description"}`, status 400) because device-flow
clients switch on `error`. `GET /device`, `approve` and `deny` are for the signed-in browser.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cronicorn.api.auth_common import ANONYMOUS_CALLS_PER_MINUTE, client_ip, session_ttl, throttle
from cronicorn.api.deps import ClockDep, ConnDep, RuntimeDep, SessionDep, UserDep
from cronicorn.api.errors import ApiError
from cronicorn.auth import device_flow
from cronicorn.auth.errors import DeviceFlowError
from cronicorn.schemas.common import iso_ms

router = APIRouter(prefix="/auth/device", tags=["Device flow"])

MAX_FIELD = 500


async def _fields(request: Request) -> dict[str, str]:
    """A JSON object or a form body, as strings (RFC 8628 uses forms, better-auth JSON)."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            data: Any = {key: value for key, value in form.items() if isinstance(value, str)}
        else:
            data = await request.json()
    except ValueError:
        raise ApiError(400, "Body must be JSON or a form") from None
    if not isinstance(data, dict):
        raise ApiError(400, "Body must be a JSON object")
    return {str(k): str(v)[:MAX_FIELD] for k, v in data.items() if isinstance(v, str | int)}


def _oauth_error(exc: DeviceFlowError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.code, "error_description": exc.description},
        status_code=400,
        headers={"Cache-Control": "no-store"},
    )


@router.post("/code", summary="Start the device flow: a device code and a user code")
async def device_code(
    request: Request, conn: ConnDep, runtime: RuntimeDep, clock: ClockDep
) -> JSONResponse:
    now = clock()
    await throttle(conn, request, f"device:{client_ip(request)}", ANONYMOUS_CALLS_PER_MINUTE, now)
    fields = await _fields(request)
    try:
        pair = await device_flow.request_codes(
            conn, client_id=fields.get("client_id", ""), scope=fields.get("scope"), now=now
        )
    except DeviceFlowError as exc:
        return _oauth_error(exc)
    page = runtime.settings.web_url.rstrip("/") + "/device"
    return JSONResponse(
        {
            "device_code": pair.device_code,
            "user_code": pair.user_code,
            "verification_uri": page,
            "verification_uri_complete": f"{page}?user_code={pair.user_code}",
            "expires_in": pair.expires_in,
            "interval": pair.interval,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/token", summary="Poll for the access token (RFC 8628 §3.4)")
async def device_token(
    request: Request, conn: ConnDep, runtime: RuntimeDep, clock: ClockDep
) -> JSONResponse:
    fields = await _fields(request)
    try:
        issued = await device_flow.exchange(
            conn,
            grant_type=fields.get("grant_type", ""),
            device_code=fields.get("device_code", ""),
            client_id=fields.get("client_id", ""),
            now=clock(),
            ttl=session_ttl(runtime),
        )
    except DeviceFlowError as exc:
        return _oauth_error(exc)  # returned, not raised: the recorded poll is committed
    body: dict[str, Any] = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "refresh_token": "",
    }
    if issued.scope:
        body["scope"] = issued.scope
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("", summary="Look up a pending user code (for the approval page)")
async def lookup(user_code: str, _: UserDep, conn: ConnDep, clock: ClockDep) -> dict[str, Any]:
    row = await device_flow.lookup(conn, user_code[:MAX_FIELD], clock())
    if row is None:
        raise ApiError(404, "Unknown or expired code")
    return {
        "userCode": row.user_code,
        "clientId": row.client_id,
        "scope": row.scope,
        "status": row.status,
        "expiresAt": iso_ms(row.expires_at),
    }


async def _decide(
    request: Request, user_id: str, conn: ConnDep, clock: ClockDep, *, approve: bool
) -> dict[str, bool]:
    fields = await _fields(request)
    code = fields.get("userCode") or fields.get("user_code") or ""
    row = await device_flow.decide(conn, code, user_id=user_id, approve=approve, now=clock())
    if row is None:
        raise ApiError(404, "Unknown, expired or already answered code")
    return {"success": True}


@router.post("/approve", summary="Approve a device (browser session only)")
async def approve(
    request: Request, principal: SessionDep, conn: ConnDep, clock: ClockDep
) -> dict[str, bool]:
    return await _decide(request, principal.user_id, conn, clock, approve=True)


@router.post("/deny", summary="Deny a device (browser session only)")
async def deny(
    request: Request, principal: SessionDep, conn: ConnDep, clock: ClockDep
) -> dict[str, bool]:
    return await _decide(request, principal.user_id, conn, clock, approve=False)
