"""OAuth device flow (RFC 8628) end to end: pending, slow_down, approval, token use, replay,
deny, expiry, the /device page, and revoking the device from /api/devices."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.auth_support import PASSWORD, Clock, call, cookies_from, make_user, sign_in
from auth.conftest import ServeFactory

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CLIENT = "cronicorn-mcp-server"


async def _codes(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    status, codes = await call(
        http,
        "POST",
        f"{base}/api/auth/device/code",
        json={"client_id": CLIENT, "scope": "openid profile email"},
    )
    assert status == 200, codes
    return dict(codes)


async def _poll(http: aiohttp.ClientSession, base: str, device_code: str) -> tuple[int, Any]:
    # RFC 8628 clients send a form body
    form = {"grant_type": GRANT, "device_code": device_code, "client_id": CLIENT}
    return await call(http, "POST", f"{base}/api/auth/device/token", data=form)


async def test_device_flow_end_to_end(
    engine: AsyncEngine, serve: ServeFactory, http: aiohttp.ClientSession
) -> None:
    clock = Clock()
    await make_user(engine, "dev@example.com")
    async with serve(clock=clock, WEB_URL="https://cron.example.com") as base:
        codes = await _codes(http, base)
        assert re.fullmatch(r"[A-Z]{4}-[A-Z]{4}", codes["user_code"])
        assert codes["verification_uri"] == "https://cron.example.com/device"
        assert codes["interval"] == 5
        assert codes["expires_in"] == 1800

        assert (await _poll(http, base, codes["device_code"]))[1][
            "error"
        ] == "authorization_pending"
        clock.advance(seconds=1)
        status, slow = await _poll(http, base, codes["device_code"])
        assert (status, slow["error"]) == (400, "slow_down")
        clock.advance(seconds=6)  # the interval grew to 10 s
        assert (await _poll(http, base, codes["device_code"]))[1]["error"] == "slow_down"
        clock.advance(seconds=16)  # and to 15 s: each slow_down adds 5 s (RFC 8628 §3.5)
        assert (await _poll(http, base, codes["device_code"]))[1][
            "error"
        ] == "authorization_pending"

        browser = await sign_in(http, base, "dev@example.com")
        lookup = f"/auth/device?user_code={codes['user_code'].lower().replace('-', ' ')}"
        status, shown = await browser.call("GET", lookup)
        assert status == 200
        assert shown["clientId"] == CLIENT
        assert (await browser.call("POST", "/auth/device/approve", {"userCode": "x"}))[0] == 404
        status, _ = await browser.call(
            "POST", "/auth/device/approve", {"userCode": codes["user_code"]}
        )
        assert status == 200
        assert (await browser.call("POST", "/auth/device/deny", {"userCode": codes["user_code"]}))[
            0
        ] == 404

        clock.advance(seconds=16)
        status, token = await _poll(http, base, codes["device_code"])
        assert status == 200, token
        assert token["token_type"] == "Bearer"
        assert token["expires_in"] == 30 * 86400
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        assert (await call(http, "GET", f"{base}/api/jobs", headers=bearer))[0] == 200

        clock.advance(seconds=16)
        status, replay = await _poll(http, base, codes["device_code"])
        assert (status, replay["error"]) == (400, "invalid_grant")

        status, devices = await browser.call("GET", "/devices")
        assert status == 200
        kinds = {d["kind"]: d for d in devices["devices"]}
        assert set(kinds) == {"browser", "device"}
        assert kinds["browser"]["current"] is True
        assert token["access_token"] not in str(devices)
        assert browser.token not in str(devices)
        status, _ = await browser.call("DELETE", f"/devices/{kinds['device']['id']}")
        assert status == 200
        assert (await call(http, "GET", f"{base}/api/jobs", headers=bearer))[0] == 401


async def test_deny_expiry_and_other_users_devices(
    engine: AsyncEngine, serve: ServeFactory, http: aiohttp.ClientSession
) -> None:
    clock = Clock()
    await make_user(engine, "one@example.com")
    await make_user(engine, "two@example.com")
    async with serve(clock=clock) as base:
        one = await sign_in(http, base, "one@example.com")
        two = await sign_in(http, base, "two@example.com")
        denied = await _codes(http, base)
        assert (await one.call("POST", "/auth/device/deny", {"userCode": denied["user_code"]}))[
            0
        ] == 200
        assert (await _poll(http, base, denied["device_code"]))[1]["error"] == "access_denied"

        late = await _codes(http, base)
        clock.advance(minutes=31)
        assert (await _poll(http, base, late["device_code"]))[1]["error"] == "expired_token"
        assert (await one.call("POST", "/auth/device/approve", {"userCode": late["user_code"]}))[
            0
        ] == 404

        status, wrong = await call(
            http,
            "POST",
            f"{base}/api/auth/device/token",
            json={"grant_type": "password", "device_code": "x", "client_id": CLIENT},
        )
        assert (status, wrong["error"]) == (400, "unsupported_grant_type")
        assert (await _poll(http, base, "unknown"))[1]["error"] == "invalid_grant"

        _, devices = await one.call("GET", "/devices")
        one_session = devices["devices"][0]["id"]
        status, _body = await two.call("DELETE", f"/devices/{one_session}")
        assert status == 404  # not 403: ids of other users' sessions are not revealed
        assert (await one.call("GET", "/jobs"))[0] == 200


async def test_device_page_signs_in_and_approves(
    engine: AsyncEngine, serve: ServeFactory, http: aiohttp.ClientSession
) -> None:
    await make_user(engine, "page@example.com")
    async with serve() as base:
        codes = await _codes(http, base)
        page = f"{base}/device?user_code={codes['user_code']}"
        async with http.get(page) as resp:
            html = await resp.text()
            assert resp.status == 200
            assert resp.headers["X-Frame-Options"] == "DENY"
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert 'name="password"' in html

        form = {
            "step": "signin",
            "user_code": codes["user_code"],
            "email": "page@example.com",
            "password": PASSWORD,
        }
        async with http.post(
            f"{base}/device",
            data=form,
            headers={"Origin": "https://evil.example"},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 403
        async with http.post(f"{base}/device", data=form, allow_redirects=False) as resp:
            assert resp.status == 303
            token = cookies_from(resp)["cronicorn_session"].value
        cookie = {"Cookie": f"cronicorn_session={token}"}
        async with http.get(page, headers=cookie) as resp:
            html = await resp.text()
        assert codes["user_code"] in html
        assert CLIENT in html
        csrf = re.search(r'name="csrf" value="([^"]+)"', html)
        assert csrf is not None
        approve = {"step": "approve", "user_code": codes["user_code"], "csrf": "forged"}
        async with http.post(f"{base}/device", data=approve, headers=cookie) as resp:
            assert resp.status == 403
        approve["csrf"] = csrf.group(1)
        async with http.post(f"{base}/device", data=approve, headers=cookie) as resp:
            assert resp.status == 200
            assert "Device approved" in await resp.text()
        status, token_body = await _poll(http, base, codes["device_code"])
        assert status == 200, token_body


async def test_device_approve_path_of_the_reference_client(
    engine: AsyncEngine, serve: ServeFactory, http: aiohttp.ClientSession
) -> None:
    """The reference's client sends users to `/device/approve?user_code=…`: the same page."""
    await make_user(engine, "approve@example.com")
    async with serve() as base:
        codes = await _codes(http, base)
        page = f"{base}/device/approve?user_code={codes['user_code']}"
        async with http.get(page) as resp:
            assert resp.status == 200
            html = await resp.text()
        assert codes["user_code"] in html
        assert 'name="password"' in html
        browser = await sign_in(http, base, "approve@example.com")
        cookie = {"Cookie": f"cronicorn_session={browser.token}"}
        async with http.get(page, headers=cookie) as resp:
            html = await resp.text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', html)
        assert csrf is not None
        assert 'action="/device"' in html
        approve = {"step": "approve", "user_code": codes["user_code"], "csrf": csrf.group(1)}
        async with http.post(f"{base}/device", data=approve, headers=cookie) as resp:
            assert "Device approved" in await resp.text()
        status, token_body = await _poll(http, base, codes["device_code"])
        assert status == 200, token_body
