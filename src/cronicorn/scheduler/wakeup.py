"""LISTEN for wake-ups (`cronicorn.store.wakeups.WAKEUP_CHANNEL`) on a dedicated connection.

The API sends NOTIFY when it moves an endpoint's `next_run_at` earlier ("run now", hints,
edits); the claim loop then re-checks at once instead of sleeping until its planned wake-up.
A lost connection is reopened with backoff, and every (re)connect wakes the loop too, since
notifications sent while disconnected are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import psycopg

from cronicorn.logs import get_logger
from cronicorn.scheduler.connection import ReconnectingConnection
from cronicorn.store.wakeups import WAKEUP_CHANNEL

log = get_logger("cronicorn.scheduler")

POLL_S = 1.0
MAX_BACKOFF_S = 5.0


async def listen_for_wakeups(
    url: str, wake: Callable[[], None], stop: asyncio.Event, *, connect_timeout_s: float = 5.0
) -> None:
    holder = ReconnectingConnection(url, purpose="listen", connect_timeout_s=connect_timeout_s)
    backoff = 0.1
    try:
        while not stop.is_set():
            try:
                conn = await holder.get()
                await conn.execute(f"LISTEN {WAKEUP_CHANNEL}")
                wake()
                backoff = 0.1
                while not stop.is_set():
                    async for _ in conn.notifies(timeout=POLL_S):
                        wake()
            except (psycopg.Error, OSError) as exc:
                log.warning(
                    "wakeup_listener_lost", error=str(exc).strip()[:200], retry_in_s=backoff
                )
                await holder.discard()
                wake()
                await _sleep_unless(stop, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
    finally:
        await holder.close()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
