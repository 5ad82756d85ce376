"""`GET /api/health` answered before the framework's layers (`api.health.HealthFastPath`,
issue 17) is the route's own response: the same status, body bytes and headers in the same
order, for a ready database and an unreachable one, and the request is counted under the
route's metric label as before. Requests the fast path leaves alone (an `Origin`) still get
CORS's headers."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from prometheus_client import REGISTRY

from cronicorn.api import health
from cronicorn.api.health import HealthFastPath
from cronicorn.app import RootApp, create_app
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from support import free_port, serve_app

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


def _apps(url: str) -> tuple[FastAPI, FastAPI]:
    """The app as composed, and the same app without the fast path (the framework's way)."""
    settings = load_settings(DATABASE_URL=url, AUTH_SECRET="t" * 40)
    fast = create_app(Runtime.create(settings, url))
    slow = create_app(Runtime.create(settings, url))
    assert isinstance(fast, RootApp)
    assert isinstance(slow, RootApp)
    assert any(isinstance(wrap(slow), HealthFastPath) for wrap in fast.fast_paths)
    slow.fast_paths = ()
    return fast, slow


async def _get(base: str, headers: dict[str, str]) -> Answer:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/api/health", headers=headers) as resp,
    ):
        raw = [(name.lower(), value) for name, value in resp.raw_headers if name.lower() != b"date"]
        return resp.status, await resp.read(), raw


async def _both(url: str, headers: dict[str, str]) -> tuple[Answer, Answer]:
    fast, slow = _apps(url)
    async with serve_app(fast) as fast_base, serve_app(slow) as slow_base:
        return await _get(fast_base, headers), await _get(slow_base, headers)


def _count(status: int) -> float:
    labels = {"method": "GET", "route": "/api/health", "status": str(status)}
    return REGISTRY.get_sample_value("cronicorn_http_requests_total", labels) or 0.0


async def test_ready_the_fast_answer_is_the_routes_and_is_counted(database_url: str) -> None:
    counted = _count(200)
    fast, slow = await _both(database_url, {"X-Request-Id": "rid-health"})
    assert fast == slow
    status, body, headers = fast
    assert status == 200
    assert body.startswith(b'{"status":"ok",')
    assert (b"x-request-id", b"rid-health") in headers
    assert (b"vary", b"Origin") in headers
    assert _count(200) == counted + 2, "each path counted once, under the route's label"


async def test_unreachable_the_fast_answer_is_the_routes() -> None:
    dead = f"postgresql://user@127.0.0.1:{free_port()}/db"
    fast, slow = await _both(dead, {"X-Request-Id": "rid-dead"})
    assert fast == slow
    assert fast[0] == 503
    assert b'"database":"unreachable"' in fast[1]


async def test_an_origin_takes_the_frameworks_way_with_cors(database_url: str) -> None:
    fast, slow = await _both(database_url, {"Origin": "http://localhost:3333"})
    assert fast[0] == slow[0] == 200
    names = {name for name, _ in fast[2]}
    assert b"access-control-allow-credentials" in names
    assert b"access-control-expose-headers" in names


async def test_a_crash_answer_carries_the_request_id_and_is_counted(database_url: str) -> None:
    """`RequestIdMiddleware` wraps the framework's `ServerErrorMiddleware` (`RootApp`): the
    500 it sends for an unhandled exception echoes the request id and is counted."""
    fast, _ = _apps(database_url)

    async def crash() -> None:
        raise RuntimeError("boom")

    fast.router.routes.insert(0, APIRoute("/crash-for-test", crash))
    labels = {"method": "GET", "route": "/crash-for-test", "status": "500"}
    before = REGISTRY.get_sample_value("cronicorn_http_requests_total", labels) or 0.0
    async with (
        serve_app(fast) as base,
        aiohttp.ClientSession() as http,
        http.get(f"{base}/crash-for-test", headers={"X-Request-Id": "rid-crash"}) as resp,
    ):
        assert resp.status == 500
        assert resp.headers["x-request-id"] == "rid-crash"
    assert REGISTRY.get_sample_value("cronicorn_http_requests_total", labels) == before + 1


async def test_a_silent_database_answers_503_within_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that accepts and never answers: the shared probe's own deadline (one per
    probe, `health._revision_in_time`) answers every waiting check, the fast and the
    framework's way, with 503."""
    monkeypatch.setattr(health, "DB_TIMEOUT_S", 0.3)
    silent = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        fast, slow = _apps(f"postgresql://user@127.0.0.1:{port}/db?connect_timeout=30")
        async with serve_app(fast) as fast_base, serve_app(slow) as slow_base:
            answers = await asyncio.wait_for(
                asyncio.gather(
                    *(_get(base, {}) for base in (fast_base, fast_base, slow_base, slow_base))
                ),
                timeout=20,
            )
    finally:
        silent.close()
    for status, body, _ in answers:
        assert status == 503
        assert b'"database":"unreachable"' in body
