"""Fixtures for notification tests."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from scheduler.conftest import Rows


@pytest.fixture
async def rows(engine: AsyncEngine) -> Rows:
    return await Rows(engine).setup()
