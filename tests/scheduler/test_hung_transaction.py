"""A scheduler stopped inside a transaction (SIGSTOP, a hung process) must not hold row locks
for ever: peers skip locked rows, so its endpoints would never be taken over."""

from __future__ import annotations

import psycopg
import pytest

from cronicorn.scheduler.connection import (
    ReconnectingConnection,
    idle_transaction_limit,
    is_connection_error,
)
from scheduler.conftest import Rows
from support import until


def test_the_limit_is_the_lease_but_never_under_ten_seconds() -> None:
    assert idle_transaction_limit(3) == "-c idle_in_transaction_session_timeout=10000"
    assert idle_transaction_limit(15) == "-c idle_in_transaction_session_timeout=15000"


@pytest.mark.slow
async def test_a_session_left_idle_in_a_transaction_loses_its_row_locks(
    rows: Rows, database_url: str
) -> None:
    [endpoint_id] = await rows.endpoints(["http://127.0.0.1:9/never"], spread_s=0)
    holder = ReconnectingConnection(
        database_url, purpose="write", options=idle_transaction_limit(3)
    )
    hung = await holder.get()
    await hung.execute("BEGIN")
    await hung.execute("SELECT 1 FROM endpoints WHERE id = %s FOR UPDATE", (endpoint_id,))
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as peer:

        async def row_is_free() -> bool:
            async with peer.transaction():
                got = await peer.execute(
                    "SELECT 1 FROM endpoints WHERE id = %s FOR UPDATE SKIP LOCKED",
                    (endpoint_id,),
                )
                return await got.fetchone() is not None

        assert not await row_is_free(), "held while its transaction is open"
        await until(row_is_free, timeout=40, what="the server to end the idle transaction")
    with pytest.raises(psycopg.Error) as ended:
        await hung.execute("SELECT 1")
    assert is_connection_error(ended.value), "the scheduler reconnects instead of failing"
    assert (await holder.get()) is not hung, "the next get() opens a new connection"
    await holder.close()
