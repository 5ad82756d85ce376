"""Planner fixtures: the row factory, the scripted model server, a session on the test clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.planner.llm import OpenAIChat
from cronicorn.planner.session import Session
from planner.fake_llm import FakeModel, serving
from planner.planner_support import Clock, Rows, Sleeps, planner_config


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
