"""Helpers for notification tests: channels stored as the API stores them, and an in-process
delivery loop with short timings."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.dispatch import DispatchConfig, Dispatcher
from cronicorn.notify.deliver import Deliverer, NotifyConfig
from cronicorn.notify.secrets import encrypt_url
from cronicorn.notify.urls import parse_channel_url
from cronicorn.scheduler.clock import Clock, utc_now
from cronicorn.store import channels as channel_store
from cronicorn.store.tables import endpoints, jobs, notify_outbox

SECRET = "n" * 40
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


async def add_channel(engine: AsyncEngine, user_id: str, url: str, name: str = "ops") -> str:
    parsed = parse_channel_url(url)
    async with engine.begin() as conn:
        channel = await channel_store.create(
            conn,
            user_id,
            name=name,
            kind=parsed.kind,
            encrypted=encrypt_url(url, SECRET),
            preview=parsed.preview,
            now=datetime.now(UTC),
        )
    return channel.id


async def stored_channel(engine: AsyncEngine, user_id: str, name: str) -> str:
    """A channel row that is never sent to, for tests of settings that name channels (Apprise's
    URL parsing costs a second or more per call on a busy machine)."""
    async with engine.begin() as conn:
        channel = await channel_store.create(
            conn,
            user_id,
            name=name,
            kind="json",
            encrypted=b"never sent",
            preview="json://127.0.0.1/hook",
            now=datetime.now(UTC),
        )
    return channel.id


async def subscribe(engine: AsyncEngine, job_id: str, **settings: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(jobs).where(jobs.c.id == job_id).values(notify=settings))


async def subscribe_endpoint(engine: AsyncEngine, endpoint_id: str, **settings: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(endpoints).where(endpoints.c.id == endpoint_id).values(notify=settings)
        )


async def outbox_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(notify_outbox).order_by(notify_outbox.c.id))
        return [dict(r._mapping) for r in rows]


def config(**overrides: Any) -> NotifyConfig:
    values: dict[str, Any] = {
        "web_url": "http://dash.example",
        "poll_s": 0.05,
        "gap_s": 0.0,
        "retry_base_s": 0.2,
        "max_attempts": 3,
        "timeout_s": 2.0,
        "auth_secret": SECRET,
    }
    values.update(overrides)
    return NotifyConfig(**values)


@contextlib.asynccontextmanager
async def delivering(
    engine: AsyncEngine, *, clock: Clock = utc_now, **overrides: Any
) -> AsyncIterator[Deliverer]:
    async with Dispatcher(DispatchConfig(allow_networks=LOOPBACK)) as dispatcher:
        deliverer = Deliverer(engine, config(**overrides), dispatcher, clock=clock)
        stop = asyncio.Event()
        task = asyncio.create_task(deliverer.run(stop))
        try:
            yield deliverer
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
