"""One PostgreSQL connection that comes back after it is lost.

The scheduler's hot statements run on a few long-lived autocommit connections (no pool
checkout or ping per statement). When PostgreSQL restarts or terminates the backend, the
failing operation raises, the holder forgets the connection, and the next `get()` opens a
new one; callers back off and retry.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractAsyncContextManager
from typing import Any

import psycopg
from psycopg import AsyncConnection

APPLICATION_NAME = "cronicorn-scheduler"


def is_connection_error(exc: BaseException) -> bool:
    """True when the connection itself is unusable (lost, terminated, closed; ended by the
    server for idling in a transaction, which psycopg reports as an InternalError)."""
    return isinstance(
        exc,
        psycopg.OperationalError
        | psycopg.InterfaceError
        | psycopg.errors.IdleInTransactionSessionTimeout
        | psycopg.errors.TransactionTimeout,
    )


async def connect(
    url: str, *, purpose: str, connect_timeout_s: float = 5.0, options: str = ""
) -> AsyncConnection[Any]:
    """An autocommit connection in UTC, named `cronicorn-scheduler:<purpose>` on the server."""
    return await psycopg.AsyncConnection.connect(
        url,
        autocommit=True,
        connect_timeout=max(1, int(connect_timeout_s)),
        application_name=f"{APPLICATION_NAME}:{purpose}",
        options=f"-c TimeZone=UTC {options}".strip(),
    )


def hung_session_limit_s(lease_s: float) -> float:
    """How long PostgreSQL lets a session sit in a transaction before ending it: max(lease,
    10 s). A hung or stopped scheduler's row locks go with its session, so peers, which skip
    locked rows, can take its expired leases over."""
    return max(lease_s, 10.0)


def idle_transaction_limit(lease_s: float) -> str:
    """Server options that end a session left idle inside a transaction (between statements
    that each end with a Sync) after `hung_session_limit_s`."""
    return f"-c idle_in_transaction_session_timeout={int(hung_session_limit_s(lease_s) * 1000)}"


TRANSACTION_TIMEOUT_SINCE = 170000
"""`transaction_timeout` (PostgreSQL 17) bounds a whole transaction, whatever the protocol
state. Inside a pipeline there is no Sync until its end, and PostgreSQL arms
`idle_in_transaction_session_timeout` only at a Sync: a scheduler frozen mid-pipeline would
hold its row locks for as long as its socket lives."""


def bounds_transactions(conn: AsyncConnection[Any]) -> bool:
    """True when this server ends over-long transactions (see `TRANSACTION_TIMEOUT_SINCE`)."""
    return conn.info.server_version >= TRANSACTION_TIMEOUT_SINCE


def pipeline_if_bounded(conn: AsyncConnection[Any]) -> AbstractAsyncContextManager[Any]:
    """Pipeline mode where `transaction_timeout` bounds it; else plain statements, each with
    its Sync, so that the idle-in-transaction timeout still ends a frozen writer's locks."""
    if bounds_transactions(conn):
        return conn.pipeline()
    return contextlib.nullcontext()


class ReconnectingConnection:
    def __init__(
        self,
        url: str,
        *,
        purpose: str,
        connect_timeout_s: float = 5.0,
        options: str = "",
        transaction_limit_s: float | None = None,
    ) -> None:
        self._url = url
        self._purpose = purpose
        self._timeout = connect_timeout_s
        self._options = options
        self._transaction_limit_s = transaction_limit_s
        self._conn: AsyncConnection[Any] | None = None

    async def get(self) -> AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await connect(
                self._url,
                purpose=self._purpose,
                connect_timeout_s=self._timeout,
                options=self._options,
            )
            limit = self._transaction_limit_s
            if limit is not None and bounds_transactions(self._conn):
                # A SET, not a startup option: older servers refuse unknown ones at connect.
                await self._conn.execute(f"SET transaction_timeout = {int(limit * 1000)}")
        return self._conn

    async def discard(self) -> None:
        """Forget the current connection (after an error); the next `get` reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        await self.discard()
