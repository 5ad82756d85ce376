"""What a running process shares between its roles: settings, the engine, the data URL.

Built once by the CLI (or a test) and handed to the roles; nothing reads global state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.config import Settings
from cronicorn.store.db import make_async_engine
from cronicorn.store.side_reads import SideReads


def _code_revision() -> str | None:
    from cronicorn.store.revisions import code_head  # the migration files, never Alembic

    return code_head()


@dataclass
class Runtime:
    settings: Settings
    database_url: str
    engine: AsyncEngine
    code_revision: str | None = field(default_factory=_code_revision)
    auth_secret: str = ""
    # Extra sections of /api/health, added by the roles running in this process.
    health_probes: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = field(default_factory=dict)
    # The embedded server's state and crash history (None with an external DATABASE_URL).
    database_server: Callable[[], dict[str, Any]] | None = None
    # Spare connections for independent reads of one request (the dashboard's).
    side_reads: SideReads = field(init=False)

    def __post_init__(self) -> None:
        self.side_reads = SideReads(self.engine)

    @classmethod
    def create(cls, settings: Settings, database_url: str, *, role: str = "api") -> Runtime:
        engine = make_async_engine(
            database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_max_overflow,
            connect_timeout_s=settings.db_connect_timeout_s,
            application_name=f"cronicorn-{role}",
        )
        return cls(
            settings=settings,
            database_url=database_url,
            engine=engine,
            auth_secret=settings.resolved_auth_secret(),
        )

    async def close(self) -> None:
        await self.engine.dispose()
