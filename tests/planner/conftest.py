"""Planner fixtures: the row factory, the scripted model server, a session on the test clock,
and the whole app served over HTTP on that same clock with two users."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import NO_RATE_LIMITS, Client, credentials
from cronicorn.api.deps import set_clock
from cronicorn.app import create_app
from cronicorn.config import load_settings
from cronicorn.planner.llm import OpenAIChat
from cronicorn.planner.session import Session
from cronicorn.runtime import Runtime
from planner.fake_llm import FakeModel, serving
from planner.planner_support import Clock, Rows, Sleeps, planner_config
from support import serve_app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def rows(engine: AsyncEngine, clock: Clock) -> Rows:
    r = Rows(engine, clock)
    r.user_id = await r.user()
    r.job_id = await r.job()
    return r


@pytest.fixture
async def fake() -> AsyncIterator[FakeModel]:
    async with serving() as model:
        yield model


@pytest.fixture
async def session(engine: AsyncEngine, fake: FakeModel, clock: Clock) -> AsyncIterator[Session]:
    config = planner_config(fake)
    assert config.model is not None
    model = OpenAIChat(config.model, sleep=Sleeps())
    try:
        yield Session(engine, model, config, clock)
    finally:
        await model.close()


@pytest.fixture
async def clients(
    database_url: str, engine: AsyncEngine, clock: Clock
) -> AsyncIterator[tuple[Client, Client]]:
    settings = load_settings(DATABASE_URL=database_url, AUTH_SECRET="s" * 40, **NO_RATE_LIMITS)
    app = create_app(Runtime.create(settings, database_url))
    set_clock(app, clock)
    a_id, a_headers = await credentials(engine, "a@example.com")
    b_id, b_headers = await credentials(engine, "b@example.com")
    async with serve_app(app) as base, aiohttp.ClientSession() as http:
        yield Client(base, http, a_headers, a_id), Client(base, http, b_headers, b_id)
