"""API keys (create once, list prefixes, both headers, revoke, expiry), CSRF for cookie
writes, sign-up switch, and the admin's user routes."""

from __future__ import annotations

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.auth_support import PASSWORD, Clock, call, make_user, sign_in
from auth.conftest import ServeFactory
from cronicorn.auth.service import create_user_with_api_key


async def test_api_key_lifecycle(
    engine: AsyncEngine, serve: ServeFactory, http: aiohttp.ClientSession
) -> None:
    clock = Clock()
    await make_user(engine, "kim@example.com")
    async with serve(clock=clock) as base:
        browser = await sign_in(http, base, "kim@example.com")
        status, created = await browser.call("POST", "/auth/api-key/create", {"name": "ci"})
        assert status == 200, created
        key = created["key"]
        assert key.startswith("cron_")
        assert len(key) > 40
        assert created["prefix"] == key[:12]
        status, listed = await browser.call("GET", "/auth/api-key/list")
        assert status == 200
        assert [k["id"] for k in listed] == [created["id"]]
        assert "key" not in listed[0]
        assert key not in str(listed)
        assert listed[0]["prefix"] == created["prefix"]

        for headers in ({"x-api-key": key}, {"X-API-KEY": key}, {"Authorization": f"Bearer {key}"}):
            assert (await call(http, "GET", f"{base}/api/jobs", headers=headers))[0] == 200
        # a key may create a job and POST with no body and no content type (no CSRF for keys)
        status, job = await call(
            http, "POST", f"{base}/api/jobs", headers={"x-api-key": key}, json={"name": "j"}
        )
        assert status == 201, job
        status, _ = await call(
            http, "POST", f"{base}/api/jobs/{job['id']}/pause", headers={"x-api-key": key}
        )
        assert status == 200

        status, _ = await browser.call("DELETE", f"/auth/api-key/{created['id']}")
        assert status == 200
        assert (await call(http, "GET", f"{base}/api/jobs", headers={"x-api-key": key}))[0] == 401
        assert (await browser.call("DELETE", f"/auth/api-key/{created['id']}"))[0] == 404

        status, short = await browser.call(
            "POST", "/auth/api-key/create", {"name": "short", "expiresIn": 60}
        )
        assert status == 200
        headers = {"x-api-key": short["key"]}
        assert (await call(http, "GET", f"{base}/api/jobs", headers=headers))[0] == 200
        clock.advance(seconds=61)
        assert (await call(http, "GET", f"{base}/api/jobs", headers=headers))[0] == 401


async def test_keys_are_scoped_to_their_owner(
    engine: AsyncEngine, base: str, http: aiohttp.ClientSession
) -> None:
    _, key_a = await create_user_with_api_key(engine, "a@example.com")
    _, key_b = await create_user_with_api_key(engine, "b@example.com")
    status, listed = await call(
        http, "GET", f"{base}/api/auth/api-key/list", headers={"x-api-key": key_a}
    )
    assert status == 200
    assert len(listed) == 1
    status, _ = await call(
        http,
        "POST",
        f"{base}/api/auth/api-key/delete",
        headers={"x-api-key": key_b},
        json={"keyId": listed[0]["id"]},
    )
    assert status == 404
    assert (await call(http, "GET", f"{base}/api/jobs", headers={"x-api-key": key_a}))[0] == 200


async def test_cookie_writes_need_the_csrf_token(
    engine: AsyncEngine, base: str, http: aiohttp.ClientSession
) -> None:
    await make_user(engine, "lou@example.com")
    browser = await sign_in(http, base, "lou@example.com")
    status, body = await browser.call("POST", "/jobs", {"name": "x"}, csrf=False)
    assert status == 403
    assert body["error"]["code"] == "csrf_failed"
    browser.extra = {"X-CSRF-Token": "forged"}
    assert (await browser.call("POST", "/jobs", {"name": "x"}, csrf=False))[0] == 403
    browser.extra = {}
    assert (await browser.call("GET", "/jobs", csrf=False))[0] == 200  # reads need none
    status, job = await browser.call("POST", "/jobs", {"name": "x"})
    assert status == 201, job


async def test_sign_up_is_off_by_default(
    serve: ServeFactory, base: str, http: aiohttp.ClientSession
) -> None:
    body = {"email": "new@example.com", "password": PASSWORD, "name": "New"}
    status, refused = await call(http, "POST", f"{base}/api/auth/sign-up/email", json=body)
    assert status == 403
    assert refused["error"]["code"] == "signup_disabled"
    status, config = await call(http, "GET", f"{base}/api/auth/config")
    assert config == {"hasEmailPassword": True, "hasGitHubOAuth": False, "allowSignup": False}
    async with serve(ALLOW_SIGNUP="true") as open_base:
        status, created = await call(http, "POST", f"{open_base}/api/auth/sign-up/email", json=body)
        assert status == 200, created
        assert created["user"]["email"] == "new@example.com"
        status, _again = await call(http, "POST", f"{open_base}/api/auth/sign-up/email", json=body)
        assert status == 409
        short = {"email": "s@example.com", "password": "short"}
        status, _ = await call(http, "POST", f"{open_base}/api/auth/sign-up/email", json=short)
        assert status == 422
        await sign_in(http, open_base, "new@example.com")


async def test_admin_manages_users(
    engine: AsyncEngine, base: str, http: aiohttp.ClientSession
) -> None:
    admin_id = await make_user(engine, "root@example.com", admin=True)
    _, user_key = await create_user_with_api_key(engine, "plain@example.com")
    admin = await sign_in(http, base, "root@example.com")
    status, created = await admin.call("POST", "/users", {"email": "new@example.com"})
    assert status == 201, created
    assert len(created["password"]) >= 16  # generated, shown once
    await sign_in(http, base, "new@example.com", created["password"])
    status, listed = await admin.call("GET", "/users")
    assert {u["email"] for u in listed["users"]} == {
        "root@example.com",
        "plain@example.com",
        "new@example.com",
    }
    assert "password" not in str(listed).lower().replace("haspassword", "")
    plain = next(u for u in listed["users"] if u["email"] == "plain@example.com")

    user_headers = {"x-api-key": user_key}
    assert (await call(http, "GET", f"{base}/api/users", headers=user_headers))[0] == 403
    status, disabled = await admin.call("POST", f"/users/{plain['id']}/disable")
    assert status == 200
    assert disabled["disabled"] is True
    assert (await call(http, "GET", f"{base}/api/jobs", headers=user_headers))[0] == 401
    assert (await admin.call("POST", f"/users/{plain['id']}/enable"))[0] == 200
    assert (await call(http, "GET", f"{base}/api/jobs", headers=user_headers))[0] == 200
    assert (await admin.call("POST", f"/users/{admin_id}/disable"))[0] == 409
    assert (await admin.call("POST", "/users", {"email": "new@example.com"}))[0] == 409
    assert (await admin.call("GET", "/users/nope"))[0] == 404
