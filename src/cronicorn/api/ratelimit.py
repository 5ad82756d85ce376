"""Per-user / per-API-key request limits shared by every API process (state in PostgreSQL).

Fixed 60-second windows: a bucket's count is bumped with one upsert per request and the
request is refused once the count passes the limit. A fixed window lets a client burst up to
twice the limit across a window boundary; in exchange it costs one indexed upsert and stays
exact across any number of processes. Reads (GET/HEAD/OPTIONS) and writes have separate
budgets. Browser and device sessions count against the user; each API key has its own
budget, so a runaway script exhausts its key, not its owner's browser session.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request

from cronicorn.store import rate_limits

WINDOW = timedelta(seconds=60)
PRUNE_EVERY_S = 60.0
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the window ends

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.reset_s)
        return out


def window_start(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


class RateLimiter:
    """Holds only when this process last pruned; the counts live in the database."""

    def __init__(self) -> None:
        self._last_prune = 0.0

    async def check(self, conn: AsyncConnection, bucket: str, limit: int, now: datetime) -> Verdict:
        start = window_start(now)
        count = await rate_limits.hit(conn, bucket, start)
        await self._maybe_prune(conn, start)
        reset = max(1, math.ceil((start + WINDOW - now).total_seconds()))
        return Verdict(count <= limit, limit, max(0, limit - count), reset)

    async def _maybe_prune(self, conn: AsyncConnection, start: datetime) -> None:
        clock = time.monotonic()
        if clock - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = clock
        await rate_limits.prune(conn, start - WINDOW)


def request_bucket(kind: str, credential: str, method: str) -> str:
    """`user:<id>:read`, `key:<id>:write`, …"""
    return f"{kind}:{credential}:{'read' if method.upper() in READ_METHODS else 'write'}"


def limiter_for(request: Request) -> RateLimiter:
    """The app's limiter (one per app, created on first use)."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        limiter = request.app.state.rate_limiter = RateLimiter()
    return limiter
