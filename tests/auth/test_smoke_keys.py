from __future__ import annotations

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.auth.service import create_user_with_api_key


async def test_api_key_in_both_headers(
    engine: AsyncEngine, base: str, http: aiohttp.ClientSession
) -> None:
    _, key = await create_user_with_api_key(engine, "k@example.com")
    for headers in ({"x-api-key": key}, {"Authorization": f"Bearer {key}"}):
        async with http.get(f"{base}/api/jobs", headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["X-RateLimit-Limit"] == "600"
    async with http.get(f"{base}/api/jobs", headers={"x-api-key": key + "x"}) as resp:
        assert resp.status == 401
    async with http.post(f"{base}/api/jobs", headers={"x-api-key": key}, json={"name": "a"}) as resp:
        assert resp.status == 201, await resp.text()
