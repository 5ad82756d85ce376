"""Fixtures for the REST resource tests: two users, and the real app on a loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import NO_RATE_LIMITS, Client, Served, credentials, make_user
from conftest import PgServer
from cronicorn.api.endpoints import close_dispatcher
from cronicorn.app import create_app
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from cronicorn.store.db import make_async_engine
from support import serve_app


@pytest.fixture
async def alice(engine: AsyncEngine) -> str:
    return await make_user(engine, "alice@example.com")


@pytest.fixture
async def bob(engine: AsyncEngine) -> str:
    return await make_user(engine, "bob@example.com")


@contextlib.asynccontextmanager
async def serving(
    database_url: str, engine: AsyncEngine, **settings_env: object
) -> AsyncIterator[Served]:
    """The whole app served over real HTTP, with two users holding API keys (`settings_env`:
    more settings, by their environment names)."""
    settings = load_settings(
        DATABASE_URL=database_url,
        AUTH_SECRET="s" * 40,
        CRONICORN_ALLOW_NETWORKS="127.0.0.0/8",  # run-now targets are local test servers
        **{**NO_RATE_LIMITS, **settings_env},
    )
    app = create_app(Runtime.create(settings, database_url))
    a_id, a_headers = await credentials(engine, "a@example.com")
    b_id, b_headers = await credentials(engine, "b@example.com")
    async with serve_app(app) as base, aiohttp.ClientSession() as http:
        yield Served(
            base=base,
            a=Client(base, http, a_headers, a_id),
            b=Client(base, http, b_headers, b_id),
            app=app,
        )
    await close_dispatcher(app.routes[0].app)


@pytest.fixture
async def served(database_url: str, engine: AsyncEngine) -> AsyncIterator[Served]:
    async with serving(database_url, engine) as served:
        yield served


@pytest.fixture(scope="module")
async def shared(pg_server: PgServer) -> AsyncIterator[tuple[Served, AsyncEngine]]:
    """One served app and database for a whole module (tests that seed their own rows)."""
    url = pg_server.create_database()
    engine = make_async_engine(url, pool_size=5, max_overflow=5)
    try:
        async with serving(url, engine) as served:
            yield served, engine
    finally:
        await engine.dispose()
        pg_server.drop_database(url)
