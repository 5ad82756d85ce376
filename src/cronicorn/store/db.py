"""Engines and connection URLs.

The async engine (psycopg 3) serves the API, scheduler and planner; migrations use a short-lived
sync engine. URLs are normalised here once so every role connects the same way.
"""

from __future__ import annotations

import os
import socket

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


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
) -> AsyncEngine:
    return create_async_engine(
        driver_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": max(1, int(connect_timeout_s)),
            "application_name": process_tag(application_name),
        },
    )


def make_sync_engine(url: str, *, application_name: str = "cronicorn-migrate") -> Engine:
    return create_engine(
        driver_url(url),
        pool_size=1,
        max_overflow=0,
        connect_args={"connect_timeout": 5, "application_name": process_tag(application_name)},
    )
