"""Email/password sign-in, the session cookie, sign-out, expiry, revocation, disabled users."""

from __future__ import annotations

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.auth_support import (
    PASSWORD,
    Clock,
    call,
    cookies_from,
    make_user,
    raw_set_cookies,
    sign_in,
)
from auth.conftest import ServeFactory
from cronicorn.auth import service


async def test_sign_in_sets_session_cookie_and_get_session(
    engine: AsyncEngine, base: str, http: aiohttp.ClientSession
) -> None:
    user_id = await make_user(engine, "ann@example.com")
    async with http.post(
        f"{base}/api/auth/sign-in/email", json={"email": "ANN@example.com", "password": PASSWORD}
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
        raw = raw_set_cookies(resp)
        cookies = cookies_from(resp)
    assert body["user"]["id"] == user_id
    assert "token" not in str(body["session"])
    session_cookie = next(c for c in raw if c.startswith("cronicorn_session="))
    assert "HttpOnly" in session_cookie
    assert "SameSite=Lax" in session_cookie
    assert "Secure" not in session_cookie  # development
    assert f"Max-Age={30 * 86400}" in session_cookie
    csrf_cookie = next(c for c in raw if c.startswith("cronicorn_csrf="))
    assert "HttpOnly" not in csrf_cookie
    token = cookies["cronicorn_session"].value

    status, me = await call(
        http,
        "GET",
        f"{base}/api/auth/get-session",
        headers={"Cookie": f"cronicorn_session={token}"},
    )
    assert status == 200
    assert me["user"]["email"] == "ann@example.com"
    assert me["session"]["via"] == "session"
    assert me["csrfToken"] == body["csrfToken"]
    # the same token works as a Bearer token (for scripts holding a session)
    status, _ = await call(
        http, "GET", f"{base}/api/jobs", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 200
    status, anon = await call(http, "GET", f"{base}/api/auth/get-session")
    assert (status, anon) == (200, "null") or (status, anon) == (200, None)


async def test_secure_cookie_and_hsts_outside_development(
    engine: AsyncEngine, serve: ServeFactory, http: aiohttp.ClientSession
) -> None:
    await make_user(engine, "prod@example.com")
    async with (
        serve(CRONICORN_ENV="production") as base,
        http.post(
            f"{base}/api/auth/sign-in/email",
            json={"email": "prod@example.com", "password": PASSWORD},
        ) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
        for cookie in raw_set_cookies(resp):
            assert "Secure" in cookie


async def test_wrong_password_and_unknown_email_look_the_same(
    engine: AsyncEngine, base: str, http: aiohttp.ClientSession
) -> None:
    await make_user(engine, "bea@example.com")
    url = f"{base}/api/auth/sign-in/email"
    wrong = await call(
        http, "POST", url, json={"email": "bea@example.com", "password": "nope-nope"}
    )
    unknown = await call(
        http, "POST", url, json={"email": "zed@example.com", "password": "nope-nope"}
    )
    assert wrong[0] == unknown[0] == 401
    for _, body in (wrong, unknown):
        del body["error"]["requestId"]
    assert wrong[1] == unknown[1]
    assert wrong[1]["error"]["code"] == "invalid_credentials"


async def test_sign_out_revokes_the_session(
    engine: AsyncEngine, base: str, http: aiohttp.ClientSession
) -> None:
    await make_user(engine, "cat@example.com")
    browser = await sign_in(http, base, "cat@example.com")
    async with http.post(f"{base}/api/auth/sign-out", headers=browser.headers()) as resp:
        assert resp.status == 200
        cleared = cookies_from(resp)
    assert cleared["cronicorn_session"].value == ""
    assert cleared["cronicorn_session"]["max-age"] == "0"
    status, body = await browser.call("GET", "/jobs")
    assert status == 401
    assert body["error"]["code"] == "unauthorized"


async def test_disabled_user_is_refused_at_once(
    engine: AsyncEngine, base: str, http: aiohttp.ClientSession
) -> None:
    user_id = await make_user(engine, "dan@example.com")
    browser = await sign_in(http, base, "dan@example.com")
    _, key = await _key(engine, user_id)
    assert (await browser.call("GET", "/jobs"))[0] == 200
    async with engine.begin() as conn:
        await service.set_disabled(conn, user_id, disabled=True, now=Clock().now)
    assert (await browser.call("GET", "/jobs"))[0] == 401
    assert (await call(http, "GET", f"{base}/api/jobs", headers={"x-api-key": key}))[0] == 401
    status, _ = await call(
        http,
        "POST",
        f"{base}/api/auth/sign-in/email",
        json={"email": "dan@example.com", "password": PASSWORD},
    )
    assert status == 401


async def test_session_expires_and_slides(
    engine: AsyncEngine, serve: ServeFactory, http: aiohttp.ClientSession
) -> None:
    clock = Clock()
    await make_user(engine, "eve@example.com")
    async with serve(clock=clock, SESSION_TTL_DAYS="2") as base:
        browser = await sign_in(http, base, "eve@example.com")
        clock.advance(days=1, hours=12)
        async with http.get(f"{base}/api/jobs", headers=browser.headers()) as resp:
            assert resp.status == 200
            refreshed = cookies_from(resp)  # the expiry slid: the cookie is sent again
        assert refreshed["cronicorn_session"]["max-age"] == str(2 * 86400)
        clock.advance(days=1, hours=12)  # 3 days after sign-in, 1.5 days after last use
        assert (await browser.call("GET", "/jobs"))[0] == 200
        clock.advance(days=2, seconds=1)  # unused for longer than the lifetime
        assert (await browser.call("GET", "/jobs"))[0] == 401


async def test_garbage_credentials_are_401(base: str, http: aiohttp.ClientSession) -> None:
    for headers in (
        {"Cookie": "cronicorn_session=nope"},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"x-api-key": "cron_nope"},
        {},
    ):
        status, body = await call(http, "GET", f"{base}/api/jobs", headers=headers)
        assert status == 401, headers
        assert body["error"]["code"] == "unauthorized"


async def _key(engine: AsyncEngine, user_id: str) -> tuple[str, str]:
    async with engine.begin() as conn:
        key, row = await service.issue_api_key(conn, user_id, name="t", now=Clock().now)
    return row.id, key
