"""Rate limits shared by two API instances, login throttling, the body cap, security headers
and CORS."""

from __future__ import annotations

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.auth_support import Clock, call, make_user
from auth.conftest import ServeFactory
from cronicorn.auth.service import create_user_with_api_key


async def test_rate_limit_holds_across_two_instances(
    engine: AsyncEngine, serve: ServeFactory, http: aiohttp.ClientSession
) -> None:
    clock = Clock()  # fixed: all requests fall in one window
    _, key = await create_user_with_api_key(engine, "busy@example.com")
    _, other = await create_user_with_api_key(engine, "calm@example.com")
    limits = {"RATE_LIMIT_READ_RPM": "5", "RATE_LIMIT_WRITE_RPM": "2"}
    headers = {"x-api-key": key}
    async with serve(clock=clock, **limits) as one, serve(clock=clock, **limits) as two:
        remaining = []
        for i in range(5):
            async with http.get(f"{(one, two)[i % 2]}/api/jobs", headers=headers) as resp:
                assert resp.status == 200
                assert resp.headers["X-RateLimit-Limit"] == "5"
                remaining.append(int(resp.headers["X-RateLimit-Remaining"]))
        assert remaining == [4, 3, 2, 1, 0]
        for base in (one, two):
            async with http.get(f"{base}/api/jobs", headers=headers) as resp:
                assert resp.status == 429
                body = await resp.json()
                assert body["error"]["code"] == "rate_limited"
                assert 1 <= int(resp.headers["Retry-After"]) <= 60
                assert resp.headers["Retry-After"] == resp.headers["X-RateLimit-Reset"]
        # writes have their own budget; other users are unaffected
        for _ in range(2):
            status, _ = await call(
                http, "POST", f"{two}/api/jobs", headers=headers, json={"name": "j"}
            )
            assert status == 201
        status, _ = await call(http, "POST", f"{one}/api/jobs", headers=headers, json={"name": "j"})
        assert status == 429
        assert (await call(http, "GET", f"{one}/api/jobs", headers={"x-api-key": other}))[0] == 200
        clock.advance(seconds=60)  # next window
        assert (await call(http, "GET", f"{one}/api/jobs", headers=headers))[0] == 200


async def test_login_attempts_are_throttled_per_email_and_address(
    engine: AsyncEngine, serve: ServeFactory, http: aiohttp.ClientSession
) -> None:
    await make_user(engine, "target@example.com")
    async with serve(clock=Clock()) as base:
        url = f"{base}/api/auth/sign-in/email"
        wrong = {"email": "target@example.com", "password": "guess-guess"}
        for _ in range(10):
            assert (await call(http, "POST", url, json=wrong))[0] == 401
        async with http.post(url, json=wrong) as resp:
            assert resp.status == 429
            assert int(resp.headers["Retry-After"]) >= 1
        other = {"email": "someone@example.com", "password": "guess-guess"}
        assert (await call(http, "POST", url, json=other))[0] == 401


async def test_body_size_cap(
    engine: AsyncEngine, serve: ServeFactory, http: aiohttp.ClientSession
) -> None:
    _, key = await create_user_with_api_key(engine, "big@example.com")
    async with serve(MAX_BODY_BYTES="2048") as base:
        big = {"name": "x" * 4096}
        status, body = await call(
            http, "POST", f"{base}/api/jobs", headers={"x-api-key": key}, json=big
        )
        assert status == 413
        assert body["error"]["code"] == "payload_too_large"

        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(8):
                yield b"x" * 512

        async with http.post(
            f"{base}/api/jobs",
            headers={"x-api-key": key, "Content-Type": "application/json"},
            data=chunks(),
        ) as resp:
            assert resp.status == 413  # chunked, no Content-Length
        status, _ = await call(
            http, "POST", f"{base}/api/jobs", headers={"x-api-key": key}, json={"name": "ok"}
        )
        assert status == 201


async def test_security_headers_and_cors(base: str, http: aiohttp.ClientSession) -> None:
    for path in ("/api/health", "/api/jobs"):
        async with http.get(f"{base}{path}") as resp:
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["X-Frame-Options"] == "DENY"
            assert resp.headers["Content-Security-Policy"] == (
                "default-src 'none'; frame-ancestors 'none'"
            )
            assert resp.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
            assert "Strict-Transport-Security" not in resp.headers  # development
    preflight = {
        "Origin": "http://localhost:3333",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key, content-type, x-csrf-token",
    }
    async with http.options(f"{base}/api/jobs", headers=preflight) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == "http://localhost:3333"
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        allowed = resp.headers["Access-Control-Allow-Headers"].lower()
        assert "x-api-key" in allowed
        assert "x-csrf-token" in allowed
    async with http.options(
        f"{base}/api/jobs", headers={**preflight, "Origin": "https://evil.example"}
    ) as resp:
        assert resp.headers.get("Access-Control-Allow-Origin") is None
    async with http.get(f"{base}/api/health", headers={"Origin": "http://localhost:3333"}) as resp:
        exposed = resp.headers["Access-Control-Expose-Headers"].lower()
        assert "x-request-id" in exposed
        assert "x-ratelimit-remaining" in exposed
