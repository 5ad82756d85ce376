"""Fixtures for scheduler tests: rows inserted directly (the API is not involved), a local
target server that records every request, and an in-process scheduler with a test clock."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from aiohttp import web
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.dispatch import DispatchConfig, Dispatcher
from cronicorn.domain.ids import new_id
from cronicorn.scheduler.clock import Clock, utc_now
from cronicorn.scheduler.execute import dispatching
from cronicorn.scheduler.loop import Scheduler, SchedulerConfig
from cronicorn.scheduler.retention import RetentionPolicy
from cronicorn.scheduler.signing_keys import SigningKeyCache
from cronicorn.store.tables import endpoints, jobs, runs, users


def utc(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


@dataclass
class Rows:
    """A tiny row factory: users, jobs and endpoints straight into the tables."""

    engine: AsyncEngine
    user_id: str = ""
    job_id: str = ""

    async def setup(self) -> Rows:
        self.user_id = await self.user()
        self.job_id = await self.job(self.user_id)
        return self

    async def user(self) -> str:
        user_id = new_id()
        async with self.engine.begin() as conn:
            await conn.execute(insert(users).values(id=user_id, email=f"{user_id}@example.com"))
        return user_id

    async def job(self, user_id: str | None = None, *, status: str = "active") -> str:
        job_id = new_id()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(jobs).values(
                    id=job_id, user_id=user_id or self.user_id, name=job_id, status=status
                )
            )
        return job_id

    async def endpoint(self, url: str, **columns: Any) -> str:
        return (await self.endpoints([url], **columns))[0]

    async def endpoints(
        self,
        urls: list[str],
        *,
        spread_s: float = 0.0,
        first_at: datetime | None = None,
        **columns: Any,
    ) -> list[str]:
        """Endpoints for `urls` (interval 1 s unless a baseline is given), the first due at
        `first_at` (default now) and the others spread evenly over `spread_s`."""
        start = first_at or utc()
        values = []
        for i, url in enumerate(urls):
            row: dict[str, Any] = {
                "id": new_id(),
                "job_id": self.job_id,
                "user_id": self.user_id,
                "name": f"ep{i}",
                "url": url,
                "next_run_at": start + timedelta(seconds=spread_s * i / max(len(urls), 1)),
            }
            if "baseline_cron" not in columns:
                row["baseline_interval_ms"] = 1000
            row.update(columns)
            values.append(row)
        async with self.engine.begin() as conn:
            await conn.execute(insert(endpoints), values)
        return [v["id"] for v in values]

    async def run_count(self, endpoint_id: str | None = None, **where: Any) -> int:
        query = select(func.count()).select_from(runs)
        if endpoint_id is not None:
            query = query.where(runs.c.endpoint_id == endpoint_id)
        for name, value in where.items():
            query = query.where(runs.c[name] == value)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def runs(self, endpoint_id: str | None = None) -> list[dict[str, Any]]:
        query = select(runs).order_by(runs.c.started_at)
        if endpoint_id is not None:
            query = query.where(runs.c.endpoint_id == endpoint_id)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def endpoint_row(self, endpoint_id: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(endpoints).where(endpoints.c.id == endpoint_id))).one()
        return dict(row._mapping)


@pytest.fixture
async def rows(engine: AsyncEngine) -> Rows:
    return await Rows(engine).setup()


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A raw autocommit psycopg connection, as the scheduler's own connections are."""
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, options="-c TimeZone=UTC"
    ) as connection:
        yield connection


@dataclass
class Hit:
    path: str
    due_at: str | None
    run_id: str | None
    started: float
    finished: float = 0.0


@dataclass
class Target:
    """A local HTTP server; `/ok/<name>` answers 200 JSON, `/hang/<s>` sleeps first, and
    tests add routes. Every request is recorded with the scheduler's due-time header."""

    base: str = ""
    hits: list[Hit] = field(default_factory=list)
    app: web.Application = field(default_factory=web.Application)

    def count(self, prefix: str = "") -> int:
        return sum(1 for h in self.hits if h.path.startswith(prefix))

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serve_target(extra: dict[str, Handler] | None = None) -> AsyncIterator[Target]:
    target = Target()

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        hit = Hit(
            request.path,
            request.headers.get("X-Cronicorn-Due-At"),
            request.headers.get("X-Cronicorn-Run-Id"),
            loop.time(),
        )
        target.hits.append(hit)
        try:
            return await handler(request)
        finally:
            hit.finished = loop.time()

    async def ok(request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True, "path": request.path})

    async def hang(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(float(request.match_info["seconds"]))
        return web.json_response({"slept": True})

    app = web.Application(middlewares=[record])
    app.router.add_route("*", "/ok/{name:.*}", ok)
    app.router.add_route("*", "/hang/{seconds}/{name:.*}", hang)
    for path, handler in (extra or {}).items():
        app.router.add_route("*", path, handler)
    target.app = app
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    target.base = f"http://127.0.0.1:{port}"
    try:
        yield target
    finally:
        await runner.cleanup()


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    async with serve_target() as served:
        yield served


class MovableClock:
    """The wall clock plus an offset that tests move (clock jumps)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def terminate_backends(database_url: str, like: str) -> int:
    """Kill the server processes of connections whose application_name matches `like`."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE %s "
            "AND pid <> pg_backend_pid()",
            (like,),
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@contextlib.asynccontextmanager
async def running_scheduler(
    database_url: str,
    engine: AsyncEngine,
    *,
    clock: Clock | None = None,
    allow_networks: tuple[Any, ...] = LOOPBACK,
    **config: Any,
) -> AsyncIterator[Scheduler]:
    """A real scheduler (real dispatcher, real signing-key lookups) in this event loop."""
    config.setdefault("retention", RetentionPolicy(days=0, per_endpoint=0))
    config.setdefault("shutdown_timeout_s", 5.0)
    async with Dispatcher(DispatchConfig(allow_networks=allow_networks)) as dispatcher:
        scheduler = Scheduler(
            SchedulerConfig(**config),
            database_url,
            execute=dispatching(dispatcher),
            keys=SigningKeyCache(engine, "t" * 40),
            clock=clock or utc_now,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(scheduler.run(stop))
        try:
            yield scheduler
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
