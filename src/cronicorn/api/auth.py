"""`/api/auth/*`: email sign-in and sign-up, sign-out, the current session, and what sign-in
methods exist. Paths follow better-auth's so the reference's web client keeps working.

Session tokens never appear in a response body: the browser keeps them in an HttpOnly cookie,
and scripts and CLIs use API keys or the device flow instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from cronicorn.api.auth_common import (
    ANONYMOUS_CALLS_PER_MINUTE,
    LOGIN_ATTEMPTS_PER_MINUTE,
    client_ip,
    json_with_cookies,
    login_bucket,
    open_browser_session,
    throttle,
    user_json,
)
from cronicorn.api.cookies import cleared_cookies, session_token
from cronicorn.api.deps import ClockDep, ConnDep, RuntimeDep, UserDep, optional_identity
from cronicorn.api.errors import ApiError
from cronicorn.auth import service
from cronicorn.auth.errors import InvalidCredentials, SignupDisabled
from cronicorn.auth.tokens import csrf_token
from cronicorn.schemas.accounts import AuthBody, AuthConfig
from cronicorn.schemas.common import NonBlank, Text, iso_ms
from cronicorn.store import login_sessions, users

router = APIRouter(prefix="/auth", tags=["Auth"])


class SignIn(AuthBody):
    email: Text = Field(max_length=320)
    password: Text = Field(max_length=1024)


class SignUp(SignIn):
    name: NonBlank | None = Field(default=None, max_length=200)


class ChangePassword(AuthBody):
    current_password: Text = Field(alias="currentPassword", max_length=1024)
    new_password: Text = Field(alias="newPassword", max_length=1024)


@router.get(
    "/config",
    response_model=AuthConfig,
    summary="Which sign-in methods the login page should offer",
)
async def auth_config(runtime: RuntimeDep) -> AuthConfig:
    settings = runtime.settings
    return AuthConfig(
        has_email_password=True,
        has_github_oauth=settings.github_enabled,
        allow_signup=settings.allow_signup,
    )


@router.post("/sign-in/email", summary="Sign in with email and password (sets the cookie)")
async def sign_in(
    body: SignIn, request: Request, conn: ConnDep, runtime: RuntimeDep, clock: ClockDep
) -> JSONResponse:
    now = clock()

    await throttle(
        conn, request, login_bucket(body.email, client_ip(request)), LOGIN_ATTEMPTS_PER_MINUTE, now
    )
    user = await service.authenticate_password(conn, body.email, body.password, now)
    cookies, payload = await open_browser_session(conn, request, runtime, user, now)
    return json_with_cookies(payload, cookies)


@router.post("/sign-up/email", summary="Create an account (only when ALLOW_SIGNUP=true)")
async def sign_up(
    body: SignUp, request: Request, conn: ConnDep, runtime: RuntimeDep, clock: ClockDep
) -> JSONResponse:
    now = clock()
    if not runtime.settings.allow_signup:
        raise SignupDisabled

    await throttle(conn, request, f"signup:{client_ip(request)}", ANONYMOUS_CALLS_PER_MINUTE, now)
    user = await service.create_user(conn, email=body.email, password=body.password, name=body.name)
    cookies, payload = await open_browser_session(conn, request, runtime, user, now)
    return json_with_cookies(payload, cookies)


@router.post("/sign-out", summary="End this session (revokes it and clears the cookie)")
async def sign_out(
    principal: UserDep, request: Request, conn: ConnDep, runtime: RuntimeDep, clock: ClockDep
) -> JSONResponse:
    if principal.via in ("session", "bearer"):
        await login_sessions.revoke(conn, principal.user_id, principal.credential_id, clock())
    return json_with_cookies({"success": True}, cleared_cookies(runtime.settings))


@router.post(
    "/change-password",
    summary="Change your password (signs out your other sessions)",
    description="Needs the current password. Every other browser and device session of the "
    "user is revoked; the calling session and API keys keep working. Wrong current passwords "
    "count toward the sign-in attempt limit.",
)
async def change_password(
    body: ChangePassword, principal: UserDep, request: Request, conn: ConnDep, clock: ClockDep
) -> JSONResponse:
    now = clock()
    bucket = login_bucket(f"change:{principal.user_id}", client_ip(request))
    await throttle(conn, request, bucket, LOGIN_ATTEMPTS_PER_MINUTE, now)
    keep = principal.credential_id if principal.via in ("session", "bearer") else None
    try:
        revoked = await service.change_password(
            conn,
            principal.user_id,
            current=body.current_password,
            new=body.new_password,
            now=now,
            keep_session=keep,
        )
    except InvalidCredentials:  # signed in already: a wrong current password is a 403
        raise ApiError(403, "Current password is incorrect", code="invalid_credentials") from None
    return JSONResponse({"success": True, "revokedSessions": revoked})


@router.get("/get-session", summary="The signed-in user and session, or null")
async def get_session(request: Request, conn: ConnDep, runtime: RuntimeDep) -> JSONResponse:
    identity = await optional_identity(request, conn, runtime)
    if identity is None:
        return JSONResponse(None)
    user = await users.get_by_id(conn, identity.user_id)
    assert user is not None
    body: dict[str, Any] = {
        "user": user_json(user),
        "session": {
            "id": identity.credential_id,
            "via": identity.via,
            "expiresAt": iso_ms(identity.expires_at) if identity.expires_at else None,
        },
    }
    token = session_token(request)
    if identity.via == "session" and token is not None:
        body["csrfToken"] = csrf_token(runtime.auth_secret, token)
    return JSONResponse(body)
