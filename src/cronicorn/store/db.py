"""Engines and connection URLs.

The async engine (psycopg 3) serves the API, scheduler and planner; migrations use a short-lived
sync engine. URLs are normalised here once so every role connects the same way.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

PING_IDLE_S = 1.0  # a pooled connection idle longer than this is pinged before use


def driver_url(url: str) -> str:
    """`postgresql://…` (libpq form, what operators paste) → SQLAlchemy's psycopg 3 form."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("database URL must start with postgresql://")


def libpq_url(url: str) -> str:
    """The reverse: a URL that psql / pg_dump accept as is."""
    return "postgresql://" + driver_url(url)[len("postgresql+psycopg://") :]


def process_tag(application_name: str) -> str:
    """`name@host:pid`, so pg_stat_activity (and a refused restore) names the process and
    machine behind each connection, not only a server backend pid. PostgreSQL keeps 63
    bytes: the host name is shortened, never the pid."""
    suffix = f":{os.getpid()}"
    room = 63 - len(application_name) - 1 - len(suffix)
    return f"{application_name}@{socket.gethostname()[: max(room, 0)]}{suffix}"


def make_async_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    connect_timeout_s: float = 5.0,
    application_name: str = "cronicorn",
    ping_idle_s: float = PING_IDLE_S,
) -> AsyncEngine:
    engine = create_async_engine(
        driver_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": max(1, int(connect_timeout_s)),
            "application_name": process_tag(application_name),
        },
    )
    ping_when_idle(engine.sync_engine, ping_idle_s)
    return engine


def ping_when_idle(engine: Engine, idle_s: float = PING_IDLE_S) -> None:
    """Pessimistic disconnect handling without a round trip on every checkout (as
    `pool_pre_ping` would cost: one of five per API request): a connection idle in the pool
    for more than `idle_s` is pinged before use, and a dead one is replaced. A connection
    returned moments ago was alive moments ago; if the server died in between, the statement
    fails as it could after any ping, and SQLAlchemy then invalidates the whole pool."""

    pool = engine.pool

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since <= idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)  # what pool_pre_ping runs (in autocommit)
        except Exception as exc:
            raise DisconnectionError(str(exc)) from exc


def make_sync_engine(url: str, *, application_name: str = "cronicorn-migrate") -> Engine:
    return create_engine(
        driver_url(url),
        pool_size=1,
        max_overflow=0,
        connect_args={"connect_timeout": 5, "application_name": process_tag(application_name)},
    )
