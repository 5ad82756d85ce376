"""Fixtures for the web pages: one served app (API, pages and an in-process scheduler) and one
database per module, users with passwords, a local target server, and one headless Debian
Chromium per module (never downloaded: /usr/bin/chromium).

Module-scoped on purpose: starting a browser and a server per test would cost seconds each
on a 2-core CI machine. Tests in a module create their own jobs and users, so they do not
depend on each other's order.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from playwright.async_api import Browser, async_playwright
from sqlalchemy.ext.asyncio import AsyncEngine

from conftest import PgServer
from cronicorn.app import create_app
from cronicorn.auth import service
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from cronicorn.scheduler.role import scheduler_role
from cronicorn.store.db import make_async_engine
from support import serve_app

PASSWORD = "correct horse battery staple"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(os.environ.get("WEB_SCREENSHOTS", "/tmp/cronicorn-web-screenshots"))
_emails = itertools.count(1)


@dataclass
class Target:
    """A local HTTP server the endpoints call: answers what `reply` says, counts hits."""

    base: str
    hits: int = 0
    reply: dict[str, Any] = field(default_factory=lambda: {"status": 200, "body": {"ok": True}})


@dataclass
class Site:
    base: str
    engine: AsyncEngine
    app: FastAPI
    target: Target

    async def user(self, prefix: str = "user") -> str:
        """A new user with PASSWORD; returns the email."""
        email = f"{prefix}{next(_emails)}@example.com"
        async with self.engine.begin() as conn:
            await service.create_user(conn, email=email, password=PASSWORD)
        return email


def target_app(target: Target) -> FastAPI:
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
    async def anything(path: str, request: Request) -> Response:
        target.hits += 1
        reply = target.reply
        if "text" in reply:
            return Response(reply["text"], status_code=reply["status"], media_type="text/html")
        return JSONResponse(reply["body"], status_code=reply["status"])

    return app


@contextlib.asynccontextmanager
async def site_on(url: str, *, scheduler: bool) -> AsyncIterator[Site]:
    settings = load_settings(
        DATABASE_URL=url,
        AUTH_SECRET="w" * 40,
        CRONICORN_ALLOW_NETWORKS="127.0.0.0/8",  # endpoints call the local target server
        RATE_LIMIT_READ_RPM=1_000_000,
        RATE_LIMIT_WRITE_RPM=1_000_000,
    )
    roles = [("scheduler", scheduler_role)] if scheduler else []
    app = create_app(Runtime.create(settings, url), roles=roles)
    engine = make_async_engine(url, pool_size=3, max_overflow=3)
    target = Target(base="")
    try:
        async with serve_app(target_app(target)) as target_base, serve_app(app) as base:
            target.base = target_base
            yield Site(base, engine, app, target)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def site(pg_server: PgServer) -> AsyncIterator[Site]:
    """The app with an in-process scheduler on its own database, for the whole module."""
    url = pg_server.create_database()
    try:
        async with site_on(url, scheduler=True) as served:
            yield served
    finally:
        pg_server.drop_database(url)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless (skipped where it is not installed)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium")
    async with async_playwright() as p:
        chromium = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()
