"""The gate's transaction handling: counts survive a failing route, and a route whose own
dependency opened a transaction first still authenticates (the gate joins it)."""

from __future__ import annotations

from typing import Annotated

import aiohttp
from fastapi import Depends, FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth.conftest import SECRET
from cronicorn.api import errors, security
from cronicorn.api.deps import ConnDep, Principal, UserDep
from cronicorn.auth.service import create_user_with_api_key
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from cronicorn.store.tables import rate_limits
from support import serve_app


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return sum((await conn.execute(select(rate_limits.c.count))).scalars())


async def test_failed_requests_still_count(
    engine: AsyncEngine, base: str, http: aiohttp.ClientSession
) -> None:
    _, key = await create_user_with_api_key(engine, "fail@example.com")
    async with http.get(f"{base}/api/jobs/nope", headers={"x-api-key": key}) as resp:
        assert resp.status == 404
    async with http.get(f"{base}/api/jobs/nope", headers={"x-api-key": key}) as resp:
        assert resp.headers["X-RateLimit-Remaining"] == "598"
    assert await _count(engine) == 2


async def test_gate_joins_a_transaction_opened_before_it(
    database_url: str, engine: AsyncEngine, http: aiohttp.ClientSession
) -> None:
    _, key = await create_user_with_api_key(engine, "join@example.com")
    settings = load_settings(DATABASE_URL=database_url, AUTH_SECRET=SECRET)
    app = FastAPI()
    app.state.runtime = Runtime.create(settings, database_url)
    errors.install(app)
    security.install(app, settings)

    app.post("/probe")(probe)
    try:
        async with serve_app(app) as base:
            async with http.post(f"{base}/probe", headers={"x-api-key": key}) as resp:
                assert resp.status == 200, await resp.text()
                assert resp.headers["X-RateLimit-Remaining"] == "119"
            async with http.post(f"{base}/probe") as resp:
                assert resp.status == 401
    finally:
        await app.state.runtime.close()
    async with engine.connect() as conn:
        mark = await conn.execute(text("SELECT value FROM settings WHERE key = 'probe'"))
        assert mark.scalar_one() == "written"


async def early(conn: ConnDep) -> int:
    """A dependency that uses the request's connection before the gate does."""
    return int((await conn.execute(text("SELECT 1"))).scalar_one())


async def probe(
    one: Annotated[int, Depends(early)], user: UserDep, conn: ConnDep
) -> dict[str, object]:
    await _write(conn, user)
    return {"one": one, "user": user.user_id}


async def _write(conn: AsyncConnection, user: Principal) -> None:
    await conn.execute(
        text("INSERT INTO settings (key, value) VALUES ('probe', '\"written\"'::jsonb)")
    )
