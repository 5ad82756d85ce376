"""GitHub sign-in routes (present only when GITHUB_CLIENT_ID/SECRET are set).

`GET /api/auth/sign-in/github?redirect=/path` (or better-auth's `POST /api/auth/sign-in/social`
`{"provider": "github"}`, which answers the URL) sends the browser to GitHub with a random
`state` that is also kept in a signed, 10-minute cookie; `GET /api/auth/callback/github`
checks that the two match before it talks to GitHub, then sets the session cookie and
redirects to WEB_URL + path. Failures redirect to `WEB_URL/login?error=…`.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from cronicorn.api.auth_common import open_browser_session, with_cookies
from cronicorn.api.cookies import session_cookie_attributes
from cronicorn.api.deps import ClockDep, ConnDep, RuntimeDep
from cronicorn.api.errors import ApiError
from cronicorn.auth import github
from cronicorn.auth.errors import OAuthError
from cronicorn.logs import get_logger
from cronicorn.runtime import Runtime
from cronicorn.schemas.common import Text

router = APIRouter(prefix="/auth", tags=["Auth"], include_in_schema=False)
log = get_logger("cronicorn.auth.github")

STATE_COOKIE = "cronicorn_oauth"


class Social(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)

    provider: Text = Field(max_length=50)
    callback_url: Text | None = Field(default=None, alias="callbackURL", max_length=2000)


def _start(runtime: Runtime, redirect: str | None) -> tuple[str, str]:
    """(GitHub authorize URL, Set-Cookie for the state)."""
    if not runtime.settings.github_enabled:
        raise ApiError(404, "GitHub sign-in is not configured (GITHUB_CLIENT_ID/SECRET)")
    state = github.new_state()
    packed = github.pack_state_cookie(runtime.auth_secret, state, github.safe_redirect(redirect))
    cookie = session_cookie_attributes(runtime.settings, STATE_COOKIE, packed, github.STATE_TTL_S)
    return github.authorize_url(runtime.settings, state), cookie


@router.get("/sign-in/github")
async def sign_in_github(runtime: RuntimeDep, redirect: str | None = None) -> Response:
    url, cookie = _start(runtime, redirect)
    return with_cookies(RedirectResponse(url, status_code=302), [cookie])


@router.post("/sign-in/social")
async def sign_in_social(body: Social, runtime: RuntimeDep) -> Response:
    if body.provider != "github":
        raise ApiError(400, f"Unknown provider {body.provider!r} (only 'github')")
    url, cookie = _start(runtime, body.callback_url)
    return with_cookies(JSONResponse({"url": url, "redirect": True}), [cookie])


@router.get("/callback/github")
async def callback_github(
    request: Request,
    conn: ConnDep,
    runtime: RuntimeDep,
    clock: ClockDep,
    code: str = "",
    state: str = "",
) -> Response:
    web = runtime.settings.web_url.rstrip("/")
    clear = session_cookie_attributes(runtime.settings, STATE_COOKIE, "", 0)
    try:
        redirect = _check_state(request, runtime, state)
        if not code:
            raise OAuthError(request.query_params.get("error") or "GitHub sent no code")
        account = await github.fetch_account(runtime.settings, code[:500])
        user = await github.resolve_user(conn, runtime.settings, account, clock())
        cookies, _ = await open_browser_session(conn, request, runtime, user, clock())
    except OAuthError as exc:
        log.warning("github_sign_in_refused", reason=str(exc))
        target = f"{web}/login?{urlencode({'error': str(exc)})}"
        return with_cookies(RedirectResponse(target, status_code=302), [clear])
    return with_cookies(RedirectResponse(web + redirect, status_code=302), [clear, *cookies])


def _check_state(request: Request, runtime: Runtime, state: str) -> str:
    cookie = request.cookies.get(STATE_COOKIE, "")
    if not state or not cookie:
        raise OAuthError("Sign-in state is missing; start again")
    expected, redirect = github.unpack_state_cookie(runtime.auth_secret, cookie)
    if not github.same_state(expected, state):
        raise OAuthError("Sign-in state does not match; start again")
    return redirect
