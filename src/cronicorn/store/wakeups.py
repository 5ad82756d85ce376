"""LISTEN/NOTIFY wake-ups between roles: the API (or planner) wakes schedulers when it moves an
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


# Runs that started or finished, and endpoints whose state changed, for the web pages' live
# updates (`web/live.py` LISTENs). Payload: "<user id> <endpoint id>"; a page refreshes what
# shows that endpoint. One notification per endpoint and transaction (PostgreSQL folds
# duplicates), sent on commit, so a page never reads a run before it is visible.
RUNS_CHANNEL = "cronicorn_runs"
# For the scheduler's raw psycopg batch write (`store/run_writes.write_finished`).
RUNS_FINISHED_SQL = """
SELECT pg_notify('cronicorn_runs', payload)
FROM (SELECT DISTINCT user_id || ' ' || endpoint_id AS payload
      FROM runs WHERE id = ANY(%(ids)s::text[])) AS changed
"""


async def endpoint_changed(conn: AsyncConnection, user_id: str, endpoint_id: str) -> None:
    """Tell live pages that this endpoint (or one of its runs) changed (sent on commit)."""
    await conn.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": RUNS_CHANNEL, "payload": f"{user_id} {endpoint_id}"},
    )
