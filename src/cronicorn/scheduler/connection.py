"""One PostgreSQL connection that comes back after it is lost.

The scheduler's hot statements run on a few long-lived autocommit connections (no pool
checkout or ping per statement). When PostgreSQL restarts or terminates the backend, the
failing operation raises, the holder forgets the connection, and the next `get()` opens a
new one; callers back off and retry.
"""

from __future__ import annotations

import contextlib
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
        | psycopg.errors.IdleInTransactionSessionTimeout,
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


def idle_transaction_limit(lease_s: float) -> str:
    """Server options that end a session left idle inside a transaction (a hung or stopped
    scheduler between its batch's statements) after max(lease, 10 s): its row locks go with it,
    so peers, which skip locked rows, can take its expired leases over."""
    return f"-c idle_in_transaction_session_timeout={int(max(lease_s, 10.0) * 1000)}"


class ReconnectingConnection:
    def __init__(
        self, url: str, *, purpose: str, connect_timeout_s: float = 5.0, options: str = ""
    ) -> None:
        self._url = url
        self._purpose = purpose
        self._timeout = connect_timeout_s
        self._options = options
        self._conn: AsyncConnection[Any] | None = None

    async def get(self) -> AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await connect(
                self._url,
                purpose=self._purpose,
                connect_timeout_s=self._timeout,
                options=self._options,
            )
        return self._conn

    async def discard(self) -> None:
        """Forget the current connection (after an error); the next `get` reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        await self.discard()
