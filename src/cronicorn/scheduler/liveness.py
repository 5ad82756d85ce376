"""This scheduler's sign of life in PostgreSQL: a session advisory lock on its own connection.

A lease says "this endpoint is mine until `lease_until`"; on its own it lets a crashed
scheduler's endpoints sit silent for the whole lease. So every scheduler holds a session-level
advisory lock, `(LIVENESS_CLASS, key)`, on a connection it keeps for nothing else, and puts the
key in every lease it writes (`store.claims.lease_token`). A process that dies (SIGKILL, OOM,
crash) closes its socket, PostgreSQL ends the session and frees the lock, and peers take its
leases over at once (`store.claims.TAKE_OVER_SQL`) instead of waiting for them to expire. A
process that hangs keeps its session, hence its lock, and stops heartbeating: its leases expire
after `SCHEDULER_LEASE_S` as before.

Rules that keep this safe:

* No claim without the lock: the claim loop waits for `held`; it is cleared as soon as the
  lock's connection fails (checked every `check_every_s`), because peers may take over
  anything claimed while the lock is free. Runs already in flight go on; their writes are
  compare-and-set on the lease, so one a peer took over is simply not written back.
* Reconnecting re-takes the same key, so leases still in flight stay this process's. If the
  key is still held (the old session lingers on the server after a network cut), a fresh
  key is drawn: the old session still vouches for the old leases until it goes.
* Peers take over lock-free leases only after holding their own lock for `grace_s`: when
  PostgreSQL restarts, every lock goes at once, and the schedulers coming back must not steal
  each other's runs before the others had a chance to re-take their keys.

The lock needs a real session: through a transaction-pooling proxy (PgBouncer
`pool_mode=transaction`) the lock would stay on a pooled server connection. Point schedulers
at PostgreSQL directly (or at a session-pooling proxy).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import AsyncConnection

from cronicorn.errors import first_line
from cronicorn.logs import get_logger
from cronicorn.scheduler import metrics
from cronicorn.scheduler.connection import connect
from cronicorn.store.claims import LIVENESS_CLASS

log = get_logger("cronicorn.scheduler")

MAX_BACKOFF_S = 1.0
# The server notices a vanished client machine (no FIN: power loss, network cut) through TCP
# keepalives within ~idle + interval * count seconds; its default is hours. Ignored over a
# Unix socket, where a dead process is noticed at once.
KEEPALIVES = "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"

TRY_LOCK_SQL = "SELECT pg_try_advisory_lock(%(class)s::int, %(key)s::int)"


def new_key() -> int:
    """A random positive int4: equal as `int4` and as `pg_locks.objid` (an `oid`)."""
    return secrets.randbelow(2**31 - 2) + 1


class Liveness:
    """Holds this process's liveness lock and says whether claiming is safe right now."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 5.0,
        check_every_s: float = 1.0,
        grace_s: float = 3.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._conn: AsyncConnection[tuple[Any, ...]] | None = None  # the session holding the lock
        self._timeout_s = max(1.0, connect_timeout_s)
        self._check_every_s = check_every_s
        self._grace_s = grace_s
        self._monotonic = monotonic
        self.key = new_key()
        self.held = asyncio.Event()
        self._held_since: float | None = None
        self.problem: str | None = "not connected to PostgreSQL yet"

    def may_take_over_dead(self) -> bool:
        """True once the lock has been held for the grace period (see the module notes)."""
        since = self._held_since
        return since is not None and self._monotonic() - since >= self._grace_s

    async def run(self, stop: asyncio.Event) -> None:
        """Take the lock, keep checking its connection, re-take it when lost; until `stop`."""
        backoff = 0.1
        while not stop.is_set():
            try:
                if not self.held.is_set():
                    await self._acquire()
                    backoff = 0.1
                else:
                    await self._check()
                wait = self._check_every_s
            except (psycopg.Error, OSError, TimeoutError) as exc:
                self._lost(exc)
                await self._discard()
                wait, backoff = backoff, min(backoff * 2, MAX_BACKOFF_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    async def close(self) -> None:
        """Release the lock by closing its session (last, once every lease is written)."""
        self.held.clear()
        self._held_since = None
        await self._discard()

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _acquire(self) -> None:
        async with asyncio.timeout(self._timeout_s):
            conn = await connect(
                self._url,
                purpose="liveness",
                connect_timeout_s=self._timeout_s,
                options=KEEPALIVES,
            )
            self._conn = conn
            if not await self._try_lock(conn):
                # Our previous session still holds it (or, by a 1 in 2**31 chance, a peer
                # drew it too): a fresh key, never a wait.
                self.key = new_key()
                while not await self._try_lock(conn):
                    self.key = new_key()
        self._held_since = self._monotonic()
        self.problem = None
        self.held.set()
        log.info("liveness_lock_taken", key=self.key)

    async def _try_lock(self, conn: AsyncConnection[tuple[Any, ...]]) -> bool:
        cur = await conn.execute(TRY_LOCK_SQL, {"class": LIVENESS_CLASS, "key": self.key})
        row = await cur.fetchone()
        return bool(row and row[0])

    async def _check(self) -> None:
        """The lock lives exactly as long as its session: a query that answers proves it."""
        conn = self._conn
        if conn is None or conn.closed:
            raise psycopg.OperationalError("the liveness connection was closed")
        async with asyncio.timeout(self._timeout_s):
            await conn.execute("SELECT 1")

    def _lost(self, exc: BaseException) -> None:
        reason = "PostgreSQL did not answer in time" if isinstance(exc, TimeoutError) else None
        self.problem = f"cannot reach PostgreSQL: {reason or first_line(exc)[:200]}"
        if self.held.is_set():
            metrics.DB_ERRORS.labels("liveness").inc()
            log.warning("liveness_lock_lost", key=self.key, error=self.problem)
        self.held.clear()
        self._held_since = None
