"""LISTEN/NOTIFY between roles: the API (or planner) wakes schedulers when it moves an
endpoint's `next_run_at` earlier, so "run now", one-shots and edits take effect at once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

WAKEUP_CHANNEL = "cronicorn_wakeup"


async def wake_schedulers(conn: AsyncConnection, due_at: datetime) -> None:
    """Queue a wake-up (delivered on commit; PostgreSQL folds duplicates within a transaction)."""
    await conn.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": WAKEUP_CHANNEL, "payload": due_at.isoformat()},
    )
