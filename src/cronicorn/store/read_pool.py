"""A few autocommitted psycopg connections for the API's hottest one-statement reads.

Through SQLAlchemy, one list statement costs a pooled `Connection` with its events, an
isolation switch to autocommit and its reset at check-in, an execution context and a result
wrapper, all run in a greenlet: about a fifth of `GET /api/jobs`'s CPU (bench/README.md,
issue 17). Here a read takes an idle connection that is always in autocommit and runs its
SQL (compiled once from the SQLAlchemy statement, prepared by psycopg after a few uses) on
the driver itself.

The same care as the engine's pool (`store.db`): a connection idle for more than
`PING_IDLE_S` is pinged before use and replaced if dead, one older than `RECYCLE_S` is
replaced, one that ends a read in any state but idle (an error mid-query, a cancelled
request) is closed, never reused. Driver errors come out as SQLAlchemy's `DBAPIError`
subclasses, so the one error table maps them exactly as the engine's (503 and so on).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from cronicorn.store.db import PING_IDLE_S, libpq_url, process_tag

RECYCLE_S = 1800.0  # as the engine's pool_recycle
CONNECT_TIMEOUT_S = 5

Conn = psycopg.AsyncConnection[tuple[Any, ...]]
_DIALECT = postgresql.dialect(paramstyle="pyformat")  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class ReadStatement:
    """A statement's SQL with `%(name)s` parameters (the same text on every call, so psycopg
    prepares it) and the values it binds itself (literals such as `coalesce(n, 0)`'s 0)."""

    sql: str
    fixed: Mapping[str, Any]

    def params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.fixed, **given}


def compiled(statement: ClauseElement) -> ReadStatement:
    """What SQLAlchemy would send for `statement` (its PostgreSQL dialect, compiled once)."""
    done = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
    required = {bind.key for bind in done.binds.values() if bind.required}
    fixed = {name: value for name, value in done.params.items() if name not in required}
    return ReadStatement(str(done), fixed)


class ReadPool:
    """At most `size` connections; `close()` at shutdown."""

    def __init__(
        self,
        database_url: str,
        size: int,
        *,
        application_name: str = "cronicorn",
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = libpq_url(database_url)
        self._name = application_name
        self._connect_timeout = max(1, int(connect_timeout_s))
        self._monotonic = monotonic
        self._slots = asyncio.Semaphore(size)
        self._idle: list[tuple[Conn, float, float]] = []  # (conn, born, idle since)
        self._closed = False

    async def fetch(
        self, statement: ReadStatement, given: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Every row of one statement, autocommitted (its own snapshot)."""
        sql, params = statement.sql, statement.params(given)
        async with self._connection() as conn:
            try:
                cursor = await conn.execute(sql, params)
                return await cursor.fetchall()
            except psycopg.Error as exc:
                raise _wrapped(sql, params, exc, conn) from exc

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn, _, _ in idle:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        async with self._slots:
            conn, born = await self._checkout()
            try:
                yield conn
            finally:
                self._checkin(conn, born)

    async def _checkout(self) -> tuple[Conn, float]:
        while self._idle:
            conn, born, since = self._idle.pop()  # the most recently used: warmest
            now = self._monotonic()
            if now - born > RECYCLE_S or (now - since > PING_IDLE_S and not await _alive(conn)):
                with contextlib.suppress(psycopg.Error):
                    await conn.close()
                continue
            return conn, born
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._url,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                application_name=process_tag(self._name),
            )
        except psycopg.Error as exc:
            raise DBAPIError.instance(None, None, exc, psycopg.Error) from exc
        return conn, self._monotonic()

    def _checkin(self, conn: Conn, born: float) -> None:
        idle = not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
        if idle and not self._closed:
            self._idle.append((conn, born, self._monotonic()))
        else:  # broken, or left mid-query by a cancelled request: never reused
            task = asyncio.get_running_loop().create_task(_close_quietly(conn))
            _CLOSING.add(task)
            task.add_done_callback(_CLOSING.discard)


_CLOSING: set[asyncio.Task[None]] = set()


async def _close_quietly(conn: Conn) -> None:
    """Close a connection, first cancelling whatever statement it was left running (a
    closed socket alone would let the server finish it)."""
    with contextlib.suppress(psycopg.Error):
        if conn.info.transaction_status == TransactionStatus.ACTIVE:
            await conn.cancel_safe(timeout=CONNECT_TIMEOUT_S)
        await conn.close()


async def _alive(conn: Conn) -> bool:
    try:
        await conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _wrapped(sql: str, params: Mapping[str, Any], exc: psycopg.Error, conn: Conn) -> Exception:
    lost = conn.closed or conn.info.transaction_status == TransactionStatus.UNKNOWN
    return DBAPIError.instance(sql, dict(params), exc, psycopg.Error, connection_invalidated=lost)
