"""Fixtures for the repository tests: two users in a fresh database."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import make_user


@pytest.fixture
async def alice(engine: AsyncEngine) -> str:
    return await make_user(engine, "alice@example.com")


@pytest.fixture
async def bob(engine: AsyncEngine) -> str:
    return await make_user(engine, "bob@example.com")
