"""Helpers for the REST resource tests: users, seeded rows, a fixed instant."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cronicorn.api.endpoints import close_dispatcher
from cronicorn.app import create_app
from cronicorn.auth.service import create_user_with_api_key
from cronicorn.config import load_settings
from cronicorn.domain import NO_QUOTAS
from cronicorn.domain.ids import new_id
from cronicorn.runtime import Runtime
from cronicorn.store import users
from cronicorn.store.quotas import reserve_run
from cronicorn.store.tables import ai_sessions, runs
from support import serve_app

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
# Tests and fuzzing send far more requests a minute than a person would.
NO_RATE_LIMITS = {"RATE_LIMIT_READ_RPM": 1_000_000, "RATE_LIMIT_WRITE_RPM": 1_000_000}


async def make_user(engine: AsyncEngine, email: str) -> str:
    async with engine.begin() as conn:
        row = await users.create(conn, email=email, name=email, password_hash=None)
    return row.id


def interval_endpoint(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "ping",
        "url": "https://example.com/ping",
        "baseline_interval_ms": 60_000,
    }
    config.update(overrides)
    return config


async def add_run(
    conn: AsyncConnection,
    *,
    user_id: str,
    endpoint_id: str,
    started_at: datetime,
    status: str = "success",
    source: str = "baseline-interval",
    duration_ms: int | None = 100,
    response_body: Any = None,
) -> str:
    run_id = new_id()
    await conn.execute(
        insert(runs).values(
            id=run_id,
            endpoint_id=endpoint_id,
            user_id=user_id,
            status=status,
            source=source,
            attempt=1,
            due_at=started_at,
            started_at=started_at,
            finished_at=None if status == "running" else started_at + timedelta(milliseconds=100),
            duration_ms=None if status == "running" else duration_ms,
            status_code=200 if status == "success" else 500,
            response_body=response_body,
        )
    )
    await reserve_run(conn, user_id, NO_QUOTAS, started_at)  # as the claim and run-now do
    return run_id


async def add_session(
    conn: AsyncConnection,
    *,
    user_id: str,
    endpoint_id: str,
    analyzed_at: datetime,
    tokens: int = 100,
    warnings: list[Any] | None = None,
) -> str:
    session_id = new_id()
    await conn.execute(
        insert(ai_sessions).values(
            id=session_id,
            endpoint_id=endpoint_id,
            user_id=user_id,
            analyzed_at=analyzed_at,
            tool_calls=[
                {"tool": "propose_interval", "args": {"intervalMs": 30000}, "result": "ok"}
            ],
            reasoning="steady",
            token_usage=tokens,
            duration_ms=1200,
            warnings=warnings or [],
        )
    )
    return session_id


Clock = Callable[[], datetime]


async def credentials(engine: AsyncEngine, email: str) -> tuple[str, dict[str, str]]:
    """A new user and the headers that authenticate as them (a real API key)."""
    user_id, key = await create_user_with_api_key(engine, email)
    return user_id, {"x-api-key": key}


@dataclass
class Client:
    """One user talking to the served API."""

    base: str
    http: aiohttp.ClientSession
    headers: dict[str, str]
    user_id: str

    async def call(
        self, method: str, path: str, body: Any = None, **params: Any
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": self.headers, "params": params or None}
        if body is not None:
            kwargs["json"] = body
        async with self.http.request(method, f"{self.base}/api{path}", **kwargs) as resp:
            text = await resp.text()
            if resp.content_type == "application/json" and text:
                return resp.status, await resp.json()
            return resp.status, text


@dataclass
class Served:
    base: str
    a: Client
    b: Client
    app: Any


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
