"""A scheduler stopped inside a transaction (SIGSTOP, a hung process) must not hold row locks
for ever: peers skip locked rows, so its endpoints would never be taken over."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import pytest

from cronicorn.scheduler.connection import (
    ReconnectingConnection,
    bounds_transactions,
    idle_transaction_limit,
    is_connection_error,
    pipeline_if_bounded,
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
    assert not await _row_is_free(database_url, endpoint_id), "held while in its transaction"
    await until(
        lambda: _row_is_free(database_url, endpoint_id),
        timeout=40,
        what="the server to end the idle transaction",
    )
    with pytest.raises(psycopg.Error) as ended:
        await hung.execute("SELECT 1")
    assert is_connection_error(ended.value), "the scheduler reconnects instead of failing"
    assert (await holder.get()) is not hung, "the next get() opens a new connection"
    await holder.close()


@pytest.mark.slow
async def test_a_writer_frozen_inside_a_pipeline_loses_its_row_locks(
    rows: Rows, database_url: str
) -> None:
    """A pipeline sends no Sync before its end, and PostgreSQL arms the idle timeout only at
    a Sync: there `transaction_timeout` ends the transaction (older servers get no pipeline)."""
    [endpoint_id] = await rows.endpoints(["http://127.0.0.1:9/never"], spread_s=0)
    holder = ReconnectingConnection(
        database_url,
        purpose="write",
        options=idle_transaction_limit(3),
        transaction_limit_s=2,
    )
    hung = await holder.get()
    assert bounds_transactions(hung), "the tests' server is PostgreSQL 17 or newer"
    locked = asyncio.Event()

    async def write() -> None:
        async with pipeline_if_bounded(hung), hung.transaction():
            cur = await hung.execute(
                "SELECT 1 FROM endpoints WHERE id = %s FOR UPDATE", (endpoint_id,)
            )
            await cur.fetchall()
            locked.set()
            await asyncio.Event().wait()  # frozen, like a stopped process

    task = asyncio.create_task(write())
    await until(locked.is_set, timeout=10, what="the row to be locked")
    assert not await _row_is_free(database_url, endpoint_id), "held while in its pipeline"
    await until(
        lambda: _row_is_free(database_url, endpoint_id),
        timeout=40,
        what="the server to end the frozen transaction",
    )
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    assert (await holder.get()) is not hung or hung.closed
    await holder.close()


async def _row_is_free(database_url: str, endpoint_id: str) -> bool:
    """Whether a peer could lock the endpoint's row now (peers skip locked rows)."""
    peer = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    async with peer, peer.transaction():
        got = await peer.execute(
            "SELECT 1 FROM endpoints WHERE id = %s FOR UPDATE SKIP LOCKED", (endpoint_id,)
        )
        return await got.fetchone() is not None
