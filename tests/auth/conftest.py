"""Fixtures for the accounts tests: the real app served on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import pytest

from cronicorn.api.deps import set_clock
from cronicorn.app import create_app
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from support import serve_app

SECRET = "s" * 40

ServeFactory = Callable[..., AbstractAsyncContextManager[str]]


@pytest.fixture
def serve(database_url: str) -> ServeFactory:
    """`async with serve(clock=…, **settings) as base:` runs the whole app over HTTP."""

    @asynccontextmanager
    async def _serve(
        clock: Callable[[], Any] | None = None, **overrides: Any
    ) -> AsyncIterator[str]:
        values: dict[str, Any] = {"DATABASE_URL": database_url, "AUTH_SECRET": SECRET}
        values.update(overrides)
        settings = load_settings(**values)
        app = create_app(Runtime.create(settings, database_url))
        if clock is not None:
            set_clock(app, clock)
        async with serve_app(app) as base:
            yield base

    return _serve


@pytest.fixture
async def base(serve: ServeFactory) -> AsyncIterator[str]:
    async with serve() as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client without a cookie jar (tests pass cookies explicitly)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session
