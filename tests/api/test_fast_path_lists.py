"""The hot lists answered before the framework (`api.fast_lists.ListsFastPath`, issue 17)
answer what the framework answers: the same status, body bytes and headers in the same order
(rate-limit counters included), request after request, for the job list (and `?status=`), a
job's endpoints, an endpoint's runs (with `status`/`limit`/`offset`) and another user's job
or endpoint (404). Anything the fast path leaves alone is the framework's answer too.

Two apps on one database: the app as composed, and the same app without its fast paths. Each
gets its own API key of the same user (its own rate-limit bucket), the same fixed clock and
the same requests in the same order, so their budgets stay in step and every answer must be
equal. A counting subclass proves which requests the fast path answered: the cached gate
admits from the process's reserved chunk of the rate limit, so `Site.keys` first spends
`WARM` requests, after which the next `FAST` are all admitted from the chunk (`LocalBudget`
doubles its chunks). Credential cache entries last an hour and the rate-limit prune never
comes due, so nothing depends on how fast the machine is.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import Mount
from starlette.types import Scope, Send
from yarl import URL

from api.api_support import add_run
from auth.auth_support import T0, Clock
from conftest import PgServer
from cronicorn.api.deps import set_clock
from cronicorn.api.fast_lists import ListsFastPath, _Wanted
from cronicorn.api.ratelimit import RateLimiter
from cronicorn.app import RootApp, create_app
from cronicorn.auth.service import create_user_with_api_key, issue_api_key
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from cronicorn.store import api_keys
from cronicorn.store.credential_cache import CredentialCache
from cronicorn.store.db import make_async_engine
from support import serve_app

LIMIT = 40  # the read limit of the rate-limit test (the others: no limit in reach)
WARM, FAST = 17, 15
Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


class _Counted(ListsFastPath):
    """The fast path, counting the requests it answered itself."""

    answered = 0

    async def _answered(self, scope: Scope, send: Send, wanted: _Wanted) -> bool:
        done = await super()._answered(scope, send, wanted)
        _Counted.answered += done
        return done


class _NeverPrunes(RateLimiter):
    """The limiter with its minutely prune never due (a due prune sends a request the
    framework's way: tests of the fast path must not depend on the machine's speed)."""

    def prune_due(self) -> bool:
        return False

    async def maybe_prune(self, *_: Any) -> None:
        return None


@dataclass
class Site:
    fast: str
    slow: str
    engine: AsyncEngine
    user: str
    runtimes: list[Runtime]
    http: aiohttp.ClientSession
    ids: dict[str, str] = field(default_factory=dict)

    async def keys(self, warm: int = WARM) -> tuple[str, str]:
        """Two fresh keys of the user (fast app's, slow app's: fresh rate-limit buckets),
        each used `warm` times (the answers compared as every other)."""
        out = []
        async with self.engine.begin() as conn:
            for _ in range(2):
                key, _ = await issue_api_key(conn, self.user, name="k", now=T0)
                out.append(key)
        keys = out[0], out[1]
        for _ in range(warm):
            fast, slow = await self.both(keys, "/api/jobs")
            assert fast == slow
        return keys

    async def both(self, keys: tuple[str, str], path: str, **headers: str) -> tuple[Answer, Answer]:
        fast = await _get(self.http, self.fast, path, {"x-api-key": keys[0], **headers})
        slow = await _get(self.http, self.slow, path, {"x-api-key": keys[1], **headers})
        return fast, slow


async def _get(
    http: aiohttp.ClientSession, base: str, path: str, headers: dict[str, str]
) -> Answer:
    headers = {"X-Request-Id": "rid-lists", **headers}
    url = URL(base + path, encoded=True)  # sent as written: `%69` stays `%69`
    async with http.get(url, headers=headers, allow_redirects=False) as resp:
        here = base.encode()  # the servers' ports differ (a redirect's `location`)
        raw = [
            (name.lower(), value.replace(here, b"BASE"))
            for name, value in resp.raw_headers
            if name.lower() != b"date"
        ]
        return resp.status, await resp.read(), raw


def _api_of(app: FastAPI) -> FastAPI:
    api = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == "/api")
    assert isinstance(api, FastAPI)
    return api


def _apps(url: str) -> tuple[RootApp, RootApp]:
    values = {
        "DATABASE_URL": url,
        "AUTH_SECRET": "s" * 40,
        "RATE_LIMIT_READ_RPM": 1_000_000,
        "RATE_LIMIT_WRITE_RPM": 1_000_000,
    }
    apps = []
    for _ in range(2):
        app = create_app(Runtime.create(load_settings(**values), url))
        assert isinstance(app, RootApp)
        set_clock(app, Clock())  # T0 for good: one rate-limit window
        api = _api_of(app)
        api.state.credential_cache = CredentialCache(url, ttl=timedelta(hours=1))
        api.state.rate_limiter = _NeverPrunes()
        apps.append(app)
    fast, slow = apps
    assert any(isinstance(wrap(slow), ListsFastPath) for wrap in fast.fast_paths)
    api = _api_of(fast)
    fast.fast_paths = (lambda below: _Counted(below, api=api),)
    slow.fast_paths = ()
    return fast, slow


@pytest.fixture(scope="module")
async def site(pg_server: PgServer) -> AsyncIterator[Site]:
    url = pg_server.create_database()
    engine = make_async_engine(url, pool_size=2, max_overflow=2)
    fast, slow = _apps(url)
    try:
        async with (
            serve_app(fast) as fast_base,
            serve_app(slow) as slow_base,
            aiohttp.ClientSession() as http,
        ):
            user, writer = await create_user_with_api_key(engine, f"{uuid.uuid4()}@example.com")
            other, other_key = await create_user_with_api_key(engine, f"{uuid.uuid4()}@e.com")
            runtimes = [a.state.runtime for a in (fast, slow)]
            here = Site(fast_base, slow_base, engine, user, runtimes, http)
            here.ids = await _seed(slow_base, engine, {"x-api-key": writer}, user, "job", "ep")
            theirs = await _seed(slow_base, engine, {"x-api-key": other_key}, other, "b", "b")
            here.ids.update(other_job=theirs["job"], other_ep=theirs["ep"])
            yield here
    finally:
        await engine.dispose()
        pg_server.drop_database(url)


async def _seed(
    base: str, engine: AsyncEngine, headers: dict[str, str], user: str, job: str, ep: str
) -> dict[str, str]:
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(f"{base}/api/jobs", json={"name": job}) as resp:
            job_id = (await resp.json())["id"]
        body = {"name": ep, "url": "https://example.com/é?q=1", "baselineIntervalMs": 60000}
        async with http.post(f"{base}/api/jobs/{job_id}/endpoints", json=body) as resp:
            assert resp.status == 201
            ep_id = (await resp.json())["id"]
        async with http.post(f"{base}/api/jobs", json={"name": "paused one"}) as resp:
            paused = (await resp.json())["id"]
        async with http.post(f"{base}/api/jobs/{paused}/pause") as resp:
            assert resp.status == 200
    async with engine.begin() as conn:
        for n in range(5):
            status = "failed" if n % 2 else "success"
            started = T0 - timedelta(minutes=n)
            await add_run(conn, user_id=user, endpoint_id=ep_id, started_at=started, status=status)
    return {"job": job_id, "ep": ep_id}


def _count(route: str, status: int) -> float:
    labels = {"method": "GET", "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("cronicorn_http_requests_total", labels) or 0.0


async def test_each_list_is_the_frameworks_answer_and_is_counted(site: Site) -> None:
    keys = await site.keys()
    job, ep = site.ids["job"], site.ids["ep"]
    paths = {
        "/api/jobs": [
            "/api/jobs",
            "/api/jobs?status=paused",
            "/api/jobs?status=active",
            "/api/jobs?status=archived",
        ],
        "/api/jobs/{jobId}/endpoints": [f"/api/jobs/{job}/endpoints"],
        "/api/endpoints/{id}/runs": [
            f"/api/endpoints/{ep}/runs",
            f"/api/endpoints/{ep}/runs?limit=2",
            f"/api/endpoints/{ep}/runs?status=failed&offset=1&limit=1",
            f"/api/endpoints/{ep}/runs?offset=7",
        ],
    }
    for route, urls in paths.items():
        counted, answered = _count(route, 200), _Counted.answered
        for path in urls:
            fast, slow = await site.both(keys, path)
            assert fast == slow, path
            assert fast[0] == 200, fast
        assert _Counted.answered == answered + len(urls), route
        assert _count(route, 200) == counted + 2 * len(urls), route
    fast, _ = await site.both(keys, f"/api/endpoints/{ep}/runs?limit=2")
    assert fast[1].count(b'"runId"') == 2
    assert b'"nextCursor"' in fast[1]


async def test_another_users_job_or_endpoint_is_the_same_404(site: Site) -> None:
    keys = await site.keys()
    answered = _Counted.answered
    for path, route in (
        (f"/api/jobs/{site.ids['other_job']}/endpoints", "/api/jobs/{jobId}/endpoints"),
        (f"/api/endpoints/{site.ids['other_ep']}/runs", "/api/endpoints/{id}/runs"),
        ("/api/endpoints/no-such-endpoint/runs?limit=5", "/api/endpoints/{id}/runs"),
    ):
        counted = _count(route, 404)
        fast, slow = await site.both(keys, path)
        assert fast == slow, path
        assert fast[0] == 404
        assert b'"code":"not_found"' in fast[1]
        assert b'"requestId":"rid-lists"' in fast[1]
        assert _count(route, 404) == counted + 2
    assert _Counted.answered == answered + 3


async def test_requests_out_of_the_ordinary_are_the_frameworks(site: Site) -> None:
    keys = await site.keys()
    job, ep = site.ids["job"], site.ids["ep"]
    answered = _Counted.answered
    for path in (
        "/api/jobs?status=bogus",  # 422
        "/api/jobs?status=active&status=paused",
        "/api/jobs?other=1",
        "/api/jobs?status=act%69ve",
        "/api/jobs/",
        f"/api/jobs/{job}/endpoints?x=1",
        "/api/jobs/not%20an%20id/endpoints",  # 404 from require_id
        f"/api/endpoints/{ep}/runs?limit=0",  # 422
        f"/api/endpoints/{ep}/runs?limit=01",
        f"/api/endpoints/{ep}/runs?limit=1001",
        f"/api/endpoints/{ep}/runs?cursor=abc",  # 422: not a cursor
        f"/api/endpoints/{ep}/runs?since=2025-03-10T00:00:00Z",
        f"/api/endpoints/{ep}/runs?status=nope",
    ):
        before = _Counted.answered
        fast, slow = await site.both(keys, path)
        assert fast == slow, path
        assert _Counted.answered == before, path
    for headers in ({"Origin": "http://localhost:3333"}, {"Cookie": "a=b"}):
        fast, slow = await site.both(keys, "/api/jobs", **headers)
        assert fast == slow, headers
    assert _Counted.answered == answered, "each of those went the framework's way"
    fast, _ = await site.both(keys, "/api/jobs", Origin="http://localhost:3333")
    assert b"access-control-expose-headers" in {name for name, _ in fast[2]}


async def test_the_read_limit_is_counted_and_refused_alike(site: Site) -> None:
    limited = [r.settings.model_copy(update={"rate_limit_read_rpm": LIMIT}) for r in site.runtimes]
    unlimited = [r.settings for r in site.runtimes]
    for runtime, settings in zip(site.runtimes, limited, strict=True):
        runtime.settings = settings
    try:
        keys = await site.keys(warm=0)
        answered = _Counted.answered
        statuses = []
        for _ in range(LIMIT + 3):
            fast, slow = await site.both(keys, "/api/jobs")
            assert fast == slow
            statuses.append(fast[0])
    finally:
        for runtime, settings in zip(site.runtimes, unlimited, strict=True):
            runtime.settings = settings
    assert statuses == [200] * LIMIT + [429] * 3
    assert b"retry-after" in dict(fast[2])
    # Only the first request (credential not cached yet) and the refusals take the
    # framework's way: spent reservations are renewed on the fast path itself.
    assert _Counted.answered - answered == LIMIT - 1, "admitted, and reserved, before it"


async def test_a_revoked_key_is_refused_on_the_next_request(site: Site) -> None:
    keys = await site.keys()
    fast, _ = await site.both(keys, "/api/jobs")
    answered = _Counted.answered
    fast, _ = await site.both(keys, "/api/jobs")
    assert fast[0] == 200
    assert _Counted.answered == answered + 1  # from the cache
    async with site.engine.begin() as conn:  # another process (the CLI) revokes it
        for row in await api_keys.list_for_user(conn, site.user):
            if row.revoked_at is None:
                await api_keys.revoke(conn, row.id, T0, user_id=None)
    fast, slow = await site.both(keys, "/api/jobs")
    assert fast == slow
    assert fast[0] == 401
