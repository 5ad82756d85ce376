"""Fixtures for the REST resource tests: two users, and the real app on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import Served, make_user, serving
from conftest import PgServer
from cronicorn.store.db import make_async_engine


@pytest.fixture
async def alice(engine: AsyncEngine) -> str:
    return await make_user(engine, "alice@example.com")


@pytest.fixture
async def bob(engine: AsyncEngine) -> str:
    return await make_user(engine, "bob@example.com")


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
