"""A short in-process cache of credential lookups that revocation empties at once.

The API's gate would otherwise look every request's key or session up in the database (and
bump its rate-limit counter in the same statement). Here an API process remembers a live
credential for `TTL` and checks before each use that no credential changed meanwhile:

- every change that can end a credential (key revoked, session revoked or signed out, user
  disabled) runs `announce(conn)` in its transaction: a NOTIFY on `CHANNEL`, delivered to
  every listener when (and only if) the transaction commits;
- each process LISTENs on one connection of its own; any notification empties its cache;
- before a cached entry is used, `current()` sends a trivial query on that connection.
  PostgreSQL hands a listening session every notification committed before its query ends
  (before ReadyForQuery), so once the query returns, every change committed before the
  request arrived has emptied the cache. The queries are shared (`store.coalesce`): each
  caller gets one that started after it asked, and one round trip serves every request that
  queued meanwhile. So a credential revoked through any process is refused by every process
  on its next request, with no per-request lookup.

When the listening connection is down (or not yet up), or a pooler in transaction mode gives
it another server session than the one that listens, nothing is served from the cache: the
gate looks the credential up as without one, and the connection is retried at most once a
`RETRY_S`. A lookup that raced a change is not remembered (`generation`). Changes made
without `announce` (a hand-written UPDATE, a restore) are seen after `TTL` at the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.logs import get_logger
from cronicorn.store.coalesce import Coalesced
from cronicorn.store.db import libpq_url, process_tag

log = get_logger("cronicorn.credentials")

CHANNEL = "cronicorn_credentials"
TTL = timedelta(seconds=5)
RETRY_S = 1.0
PING_TIMEOUT_S = 2.0
MAX_ENTRIES = 10_000

_ANNOUNCE = text(f"SELECT pg_notify('{CHANNEL}', '')")

Kind = Literal["api_key", "session"]


async def announce(conn: AsyncConnection) -> None:
    """Tell every API process that credentials changed (delivered when `conn` commits)."""
    await conn.execute(_ANNOUNCE)


@dataclass(frozen=True)
class Entry:
    """A credential found live at `seen_at` (the request's clock) and `seen_mono`."""

    kind: Kind
    credential_id: str
    user_id: str
    is_admin: bool
    expires_at: datetime | None
    seen_at: datetime
    seen_mono: float


class CredentialCache:
    """Token hash → `Entry`, for one process; `close()` at shutdown."""

    def __init__(
        self,
        database_url: str,
        *,
        ttl: timedelta = TTL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = libpq_url(database_url)
        self._ttl = ttl
        self._monotonic = monotonic
        self._entries: dict[str, Entry] = {}
        self._generation = 0
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._backend = 0  # the listening session's server process
        self._connecting = asyncio.Lock()
        self._retry_at = 0.0
        self._closed = False
        self._current = Coalesced(self._ping)

    @property
    def listening(self) -> bool:
        return self._conn is not None

    def lookup(self, token_hash: str, now: datetime) -> Entry | None:
        """The entry if it is young enough (both clocks) and the credential not expired."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        age = now - entry.seen_at
        held_s = self._monotonic() - entry.seen_mono
        fresh = timedelta(0) <= age < self._ttl and held_s < self._ttl.total_seconds()
        if fresh and (entry.expires_at is None or entry.expires_at > now):
            return entry
        self._entries.pop(token_hash, None)
        return None

    async def generation(self) -> int | None:
        """Take this before a lookup and hand it to `remember`: None while not listening
        (the lookup is then not remembered). Starts listening when it is time to try."""
        if self._conn is None:
            await self._listen()
        return self._generation if self._conn is not None else None

    def remember(self, token_hash: str, entry: Entry, generation: int | None) -> None:
        """Keep a lookup's result, unless a change (or a lost listener) came in between."""
        if generation is None or generation != self._generation or self._conn is None:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[token_hash] = entry

    async def current(self) -> bool:
        """True once every change committed before this call has reached the cache (the
        caller then looks its entry up again); False when that cannot be known."""
        if self._conn is None:
            return False
        try:
            return await self._current()
        except Exception:
            return False

    async def close(self) -> None:
        self._closed = True
        await self._current.close()
        await self._drop()

    # -- the listening connection ----------------------------------------------------------
    async def _listen(self) -> None:
        if self._closed or self._monotonic() < self._retry_at:
            return
        async with self._connecting:
            if self._conn is not None or self._closed:
                return
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=2,
                    application_name=process_tag("cronicorn-credentials"),
                )
            except psycopg.Error as exc:
                self._retry_at = self._monotonic() + RETRY_S
                log.warning("credential_cache_offline", error=type(exc).__name__)
                return
            try:
                conn.add_notify_handler(self._changed)
                await conn.execute(f"LISTEN {CHANNEL}")
            except psycopg.Error:
                self._retry_at = self._monotonic() + RETRY_S
                await conn.close()
                return
            self._forget()
            self._conn, self._backend = conn, conn.info.backend_pid

    async def _ping(self) -> bool:
        """A trivial query: notifications committed before it arrive before its answer. It
        asks for the server process, which must be the one that LISTENs: behind a pooler
        that hands the connection another session, nothing is served from the cache."""
        conn = self._conn
        if conn is None:
            return False
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
        except (psycopg.Error, TimeoutError):
            row = None
        if row is None or row[0] != self._backend:  # gone, or not the listening session
            await self._drop()  # (a transaction-pooling PgBouncer switches sessions)
            self._retry_at = self._monotonic() + RETRY_S
            return False
        return self._conn is conn

    def _changed(self, _notify: psycopg.Notify) -> None:
        self._forget()

    def _forget(self) -> None:
        self._entries.clear()
        self._generation += 1

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._forget()
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()
