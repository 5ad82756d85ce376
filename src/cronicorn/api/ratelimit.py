"""Per-user / per-API-key request limits shared by every API process (state in PostgreSQL).

Fixed 60-second windows: a bucket's count is bumped with one upsert per request and the
request is refused once the count passes the limit. A fixed window lets a client burst up to
twice the limit across a window boundary; in exchange it costs one indexed upsert and stays
exact across any number of processes. Reads (GET/HEAD/OPTIONS) and writes have separate
budgets. Browser and device sessions count against the user; each API key has its own
budget, so a runaway script exhausts its key, not its owner's browser session.
For authenticated requests the upsert rides in the credential lookup (`store.auth_gate`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request

from cronicorn.store import rate_limits
from cronicorn.store.auth_gate import Access
from cronicorn.store.rate_limits import window_start

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


def verdict(count: int, limit: int, now: datetime) -> Verdict:
    reset = max(1, math.ceil((window_start(now) + WINDOW - now).total_seconds()))
    return Verdict(count <= limit, limit, max(0, limit - count), reset)


class RateLimiter:
    """Holds only when this process last pruned; the counts live in the database."""

    def __init__(self) -> None:
        self._last_prune = 0.0

    async def check(self, conn: AsyncConnection, bucket: str, limit: int, now: datetime) -> Verdict:
        """Count one request in `bucket` (anonymous routes; the gate counts in its lookup)."""
        count = await rate_limits.hit(conn, bucket, window_start(now))
        return await self.judge(conn, count, limit, now)

    async def judge(self, conn: AsyncConnection, count: int, limit: int, now: datetime) -> Verdict:
        """The verdict for a window count; now and then also delete old windows."""
        await self._maybe_prune(conn, now)
        return verdict(count, limit, now)

    async def _maybe_prune(self, conn: AsyncConnection, now: datetime) -> None:
        clock = time.monotonic()
        if clock - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = clock
        await rate_limits.prune(conn, window_start(now) - WINDOW)


def access_of(method: str) -> Access:
    return "read" if method.upper() in READ_METHODS else "write"


def request_bucket(kind: str, credential: str, method: str) -> str:
    """`user:<id>:read`, `key:<id>:write`, … (the names `store.auth_gate` writes)."""
    return f"{kind}:{credential}:{access_of(method)}"


def limiter_for(request: Request) -> RateLimiter:
    """The app's limiter (one per app, created on first use)."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        limiter = request.app.state.rate_limiter = RateLimiter()
    return limiter
