"""Two API processes on one database (two apps, each with its own engine and pool, as two
`cronicorn api` workers have): a key revoked, a user disabled or a session signed out through
one is refused by the other on its very next request, on the autocommitted read path
(`GET /api/jobs`, `current_reader`) and on the transactional one (`GET /api/jobs/{id}`,
`current_user`); and the rate limit is one budget across both."""

from __future__ import annotations

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.auth_support import Clock, call, make_user, sign_in
from auth.conftest import ServeFactory
from cronicorn.auth.service import create_user_with_api_key


async def _status(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    return (await call(http, "GET", url, headers=headers))[0]


async def test_revocation_through_one_process_holds_at_once_in_the_other(
    engine: AsyncEngine, serve: ServeFactory, http: aiohttp.ClientSession
) -> None:
    await make_user(engine, "root@example.com", admin=True)
    await make_user(engine, "kim@example.com")
    plain_id, plain_key = await create_user_with_api_key(engine, "plain@example.com")
    async with serve() as one, serve() as other:
        kim = await sign_in(http, one, "kim@example.com")
        status, created = await kim.call("POST", "/auth/api-key/create", {"name": "ci"})
        assert status == 200, created
        key = {"x-api-key": created["key"]}
        status, job = await call(http, "POST", f"{other}/api/jobs", headers=key, json={"name": "j"})
        assert status == 201, job
        routes = ["/api/jobs", f"/api/jobs/{job['id']}"]
        for base in (one, other):
            for route in routes:
                assert await _status(http, base + route, key) == 200

        assert (await kim.call("DELETE", f"/auth/api-key/{created['id']}"))[0] == 200
        for route in routes:  # the other process, next request
            assert await _status(http, other + route, key) == 401

        admin = await sign_in(http, one, "root@example.com")
        plain = {"x-api-key": plain_key}
        assert await _status(http, other + "/api/jobs", plain) == 200
        assert (await admin.call("POST", f"/users/{plain_id}/disable"))[0] == 200
        assert await _status(http, other + "/api/jobs", plain) == 401

        session = {"Cookie": f"cronicorn_session={kim.token}"}
        assert await _status(http, other + "/api/jobs", session) == 200
        assert (await kim.call("POST", "/auth/sign-out"))[0] == 200
        for route in routes:
            assert await _status(http, other + route, session) == 401


async def test_the_read_limit_is_one_budget_across_processes(
    engine: AsyncEngine, serve: ServeFactory, http: aiohttp.ClientSession
) -> None:
    _, key = await create_user_with_api_key(engine, "plain@example.com")
    headers = {"x-api-key": key}
    clock = Clock()  # one fixed instant for both processes: one rate-limit window
    async with (
        serve(clock=clock, RATE_LIMIT_READ_RPM=3) as one,
        serve(clock=clock, RATE_LIMIT_READ_RPM=3) as other,
    ):
        bases = (one, other, one, other, one)
        statuses = [await _status(http, base + "/api/jobs", headers) for base in bases]
        assert statuses == [200, 200, 200, 429, 429]
        clock.advance(minutes=1)
        assert await _status(http, other + "/api/jobs", headers) == 200
