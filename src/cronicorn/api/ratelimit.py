"""Per-user / per-API-key request limits shared by every API process (state in PostgreSQL).

Fixed 60-second windows: a bucket's count is bumped with one upsert per request and the
request is refused once the count passes the limit. A fixed window lets a client burst up to
twice the limit across a window boundary; in exchange it costs one indexed upsert and stays
exact across any number of processes. Reads (GET/HEAD/OPTIONS) and writes have separate
budgets. Browser and device sessions count against the user; each API key has its own
budget, so a runaway script exhausts its key, not its owner's browser session.
For authenticated requests the upsert rides in the credential lookup (`store.auth_gate`).

A request whose credential the process has cached (`store.credential_cache`) is counted
against the process's `LocalBudget` instead: requests reserved from the database's counter
in chunks. A reservation adds its whole chunk to the shared count at once and only what
fits under the limit is granted, so the requests admitted by all processes together never
exceed the limit; a process's unused reservation is simply lost when the window ends (it
can refuse a little early, never admit too much). Chunks start at one request and double
with each reservation while at most 1/`SHARE` of what is left of the window's budget:
small limits and quiet credentials count exactly as before, a busy credential costs one
upsert per up to `MAX_CHUNK` requests. A window known spent is refused with no upsert at all.

One renewal per bucket is in flight at a time (`LocalBudget.admit`): requests that find the
reservation spent while another request renews it wait for that renewal and take from it.
Each renewing on its own, N requests at once would add N chunks to the shared count, more
than is left of the limit once N > `SHARE`: the later ones granted nothing (429) while the
process held the earlier ones' unused requests, and N upserts where one does.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request

from cronicorn.store import rate_limits
from cronicorn.store.auth_gate import Access
from cronicorn.store.rate_limits import window_start

WINDOW = timedelta(seconds=60)
PRUNE_EVERY_S = 60.0
SHARE = 8  # a reservation takes at most this fraction of what is left of the budget
MAX_CHUNK = 100
MAX_BUCKETS = 10_000
RENEWAL_WAIT_S = 2.0
"""The longest a request waits for another's renewal before it renews on its own. Waiters
hold no lock a renewal needs (see `LocalBudget.settle`); were one ever to (a dependency that
wrote before the gate), the wait would end and the two would meet in the database, whose
deadlock detection breaks the cycle, instead of hanging."""
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Reserve = Callable[[int], Awaitable[int]]
"""Add that many requests to the bucket's window in the database; the count including them."""


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
    return Verdict(count <= limit, limit, max(0, limit - count), _reset_s(now))


def _reset_s(now: datetime) -> int:
    return max(1, math.ceil((window_start(now) + WINDOW - now).total_seconds()))


@dataclass
class _Share:
    """One bucket's window as this process knows it."""

    window: datetime
    count: int = 0  # the shared count as last seen (every process's reservations)
    left: int = 0  # reserved by this process and not used yet
    used: int = 0  # requests this process counted in the window (sizes the next chunk)


@dataclass
class LocalBudget:
    """This process's reservations per bucket (see the module's docstring)."""

    shares: dict[str, _Share] = field(default_factory=dict)
    renewals: dict[str, asyncio.Event] = field(default_factory=dict)  # set once landed
    wait_s: float = RENEWAL_WAIT_S

    async def admit(
        self, bucket: str, limit: int, now: datetime, reserve: Reserve, *, wait: bool = True
    ) -> Verdict:
        """This request's verdict: from the reservation, else from the bucket's renewal in
        flight once it lands, else from renewing it with `reserve`. Whatever ends the
        renewal (an error, a cancellation), its waiters wake and take again.
        `wait=False` for a request whose open transaction may hold locks: it must not wait
        on a renewal that could wait on them, so it reserves on its own (as before)."""
        verdict = await self.settle(bucket, limit, now) if wait else self.take(bucket, limit, now)
        if verdict is not None:
            return verdict
        want = self.want(bucket, limit, now)
        landed = self.renewals[bucket] = asyncio.Event()
        try:
            count = await reserve(want)
        finally:
            if self.renewals.get(bucket) is landed:
                del self.renewals[bucket]
            landed.set()
        return self.granted(bucket, limit, now, count, want)

    async def settle(self, bucket: str, limit: int, now: datetime) -> Verdict | None:
        """`take`, after waiting for the bucket's renewals in flight, if any: None when
        none is (or one took longer than `wait_s`) and the reservation is spent.
        A waiter holds no lock a renewal waits for: its connection, if it has one, is in
        no transaction, and a renewal needs only its own connection or the read pool."""
        verdict = self.take(bucket, limit, now)
        while verdict is None and (landed := self.renewals.get(bucket)) is not None:
            try:
                async with asyncio.timeout(self.wait_s):
                    await landed.wait()
            except TimeoutError:
                return self.take(bucket, limit, now)
            verdict = self.take(bucket, limit, now)
        return verdict

    def take(self, bucket: str, limit: int, now: datetime) -> Verdict | None:
        """Admit from the local reservation, or refuse a window known spent; None when the
        database must be asked (`want`, then `granted` with its answer)."""
        share = self._current(bucket, now)
        if share is None:
            return None
        if share.left > 0:
            share.left -= 1
            share.used += 1
            return Verdict(True, limit, self._remaining(share, limit), _reset_s(now))
        if share.count >= limit:  # counts only grow within a window: no token will come
            return Verdict(False, limit, 0, _reset_s(now))
        return None

    def want(self, bucket: str, limit: int, now: datetime) -> int:
        """How many requests to reserve from the database for this one and those after."""
        share = self._current(bucket, now)
        if share is None:
            return 1
        return max(1, min(MAX_CHUNK, (limit - share.count) // SHARE, share.used))

    def granted(self, bucket: str, limit: int, now: datetime, count: int, want: int) -> Verdict:
        """The verdict once the database added `want` and answered `count`."""
        share = self._current(bucket, now)
        if share is None:
            if len(self.shares) >= MAX_BUCKETS:
                self._prune(window_start(now))
            share = self.shares[bucket] = _Share(window_start(now))
        grant = max(0, min(count, limit) - (count - want))
        share.count = max(share.count, count)
        share.used += 1
        share.left += max(0, grant - 1)
        return Verdict(grant > 0, limit, self._remaining(share, limit), _reset_s(now))

    def _current(self, bucket: str, now: datetime) -> _Share | None:
        share = self.shares.get(bucket)
        if share is None or share.window != window_start(now):
            return None
        return share

    @staticmethod
    def _remaining(share: _Share, limit: int) -> int:
        return max(0, limit - share.count + share.left)

    def _prune(self, window: datetime) -> None:
        self.shares = {k: v for k, v in self.shares.items() if v.window >= window}
        if len(self.shares) >= MAX_BUCKETS:
            self.shares.clear()


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
        await self.maybe_prune(conn, now)
        return verdict(count, limit, now)

    def prune_due(self) -> bool:
        return time.monotonic() - self._last_prune >= PRUNE_EVERY_S

    async def maybe_prune(self, conn: AsyncConnection, now: datetime) -> None:
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


def budget_for(request: Request) -> LocalBudget:
    """The app's local budget (one per app, created on first use)."""
    budget: LocalBudget | None = getattr(request.app.state, "local_budget", None)
    if budget is None:
        budget = request.app.state.local_budget = LocalBudget()
    return budget


def limiter_for(request: Request) -> RateLimiter:
    """The app's limiter (one per app, created on first use)."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        limiter = request.app.state.rate_limiter = RateLimiter()
    return limiter
