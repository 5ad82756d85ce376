"""Delivery faults: retries with backoff then "failing", timeouts, refused addresses, storms
grouped per channel, secrets kept out of logs and errors, and runs never waiting on a send."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.notify import metrics
from cronicorn.store.tables import channels, notify_deliveries, notify_outbox
from notify.notify_support import add_channel, delivering, outbox_rows, subscribe
from notify.receivers import Receiver, http_receiver
from scheduler.conftest import Rows, running_scheduler
from support import until


async def enqueue(engine: AsyncEngine, rows: Rows, channel: str, n: int, tag: str = "e") -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(notify_outbox),
            [
                {
                    "channel_id": channel,
                    "user_id": rows.user_id,
                    "event": "failure",
                    "dedup_key": f"{tag}-{i}",
                    "payload": {"event": "failure", "endpointName": f"ep{i}", "jobName": "j"},
                }
                for i in range(n)
            ],
        )


async def channel_row(engine: AsyncEngine, channel: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (await conn.execute(select(channels).where(channels.c.id == channel))).one()
    return dict(row._mapping)


def delivered_ids(rx: Receiver, path: str) -> list[int]:
    return [e["id"] for h in rx.at(path) if h.json for e in h.json["events"]]


async def test_a_500_is_retried_with_backoff_then_given_up_and_the_channel_failing(
    engine: AsyncEngine,
    rows: Rows,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    async with http_receiver() as rx:
        rx.status["/down"] = 500
        url = f"json://{rx.base[7:]}/down?token=tok-abcdef123456"
        channel = await add_channel(engine, rows.user_id, url)
        await enqueue(engine, rows, channel, 1)
        async with delivering(engine, max_attempts=3, retry_base_s=0.2):
            await until(lambda: _all(engine, "failed"), timeout=20, what="the event to be given up")
        assert len(rx.at("/down")) == 3  # three attempts, then no more
        (row,) = await outbox_rows(engine)
        assert row["attempts"] == 3
        assert "500" in row["last_error"]
        state = await channel_row(engine, channel)
        assert state["failing"] is True
        assert "500" in state["last_error"]
        gaps = [b.started - a.started for a, b in itertools.pairwise(rx.at("/down"))]
        assert gaps[0] >= 0.19  # no retry before its backoff: 0.2 s, then 0.4 s
        assert gaps[1] >= 0.39
        async with engine.connect() as conn:
            history = (await conn.execute(select(notify_deliveries))).all()
        assert [h.ok for h in history] == [False, False, False]
        rx.status["/down"] = 200
        await enqueue(engine, rows, channel, 1, tag="later")
        async with delivering(engine):
            await until(lambda: len(rx.at("/down")) == 4, timeout=20, what="a new send")
            await until(lambda: _channel_ok(engine, channel), timeout=20, what="failing cleared")
    printed = capsys.readouterr()
    assert "notify_send_failed" in printed.out + printed.err + caplog.text  # it was logged
    assert "tok-abcdef123456" not in printed.out + printed.err + caplog.text
    assert "tok-abcdef123456" not in str(await outbox_rows(engine))


async def test_a_send_that_times_out_is_retried(engine: AsyncEngine, rows: Rows) -> None:
    async with http_receiver() as rx:
        rx.hang.add("/slow")
        channel = await add_channel(engine, rows.user_id, f"json://{rx.base[7:]}/slow")
        await enqueue(engine, rows, channel, 1)
        async with delivering(engine, timeout_s=1.0, retry_base_s=0.1, max_attempts=2):
            await until(lambda: _all(engine, "failed"), timeout=20, what="two timeouts")
        (row,) = await outbox_rows(engine)
        assert "timed out" in row["last_error"].lower()
        assert len(rx.at("/slow")) == 2


async def test_an_address_refused_at_send_time_fails_at_once(
    engine: AsyncEngine, rows: Rows
) -> None:
    channel = await add_channel(engine, rows.user_id, "json://169.254.169.254/latest")
    await enqueue(engine, rows, channel, 2)
    async with delivering(engine, max_attempts=5):
        await until(lambda: _all(engine, "failed"), timeout=20, what="a permanent refusal")
    assert {r["attempts"] for r in await outbox_rows(engine)} == {1}
    assert (await channel_row(engine, channel))["failing"] is True


async def test_a_storm_is_grouped_and_rate_limited_per_channel(
    engine: AsyncEngine, rows: Rows
) -> None:
    async with http_receiver() as rx:
        channel = await add_channel(engine, rows.user_id, f"json://{rx.base[7:]}/storm")
        other = await add_channel(engine, rows.user_id, f"json://{rx.base[7:]}/calm", "calm")
        await enqueue(engine, rows, channel, 250)
        await enqueue(engine, rows, other, 1, tag="calm")
        sent_before = metrics.EVENTS.labels("failure", "sent")._value.get()
        async with delivering(engine, gap_s=0.5, max_group=100):
            await until(lambda: _all(engine, "sent"), timeout=30, what="all sent")
        ids = delivered_ids(rx, "/storm")
        assert sorted(ids) == sorted(set(ids))
        assert len(ids) == 250
        sends = rx.at("/storm")
        assert len(sends) == 3  # 100 + 100 + 50, one message per gap
        assert all(b.started - a.started >= 0.45 for a, b in itertools.pairwise(sends))
        assert sends[0].json["title"].startswith("100 notifications")
        assert "... and 80 more" in sends[0].json["body"]
        assert len(rx.at("/calm")) == 1
        assert metrics.EVENTS.labels("failure", "sent")._value.get() == sent_before + 251


async def test_runs_go_on_while_a_channel_hangs(
    database_url: str, engine: AsyncEngine, rows: Rows
) -> None:
    async with http_receiver() as rx:
        rx.status["/target"] = 500
        rx.held.add("/hook")
        await rows.endpoint(f"{rx.base}/target", baseline_interval_ms=300, max_interval_ms=300)
        channel = await add_channel(engine, rows.user_id, f"json://{rx.base[7:]}/hook")
        await subscribe(engine, rows.job_id, channels=[channel])
        async with running_scheduler(database_url, engine), delivering(engine, timeout_s=60):
            await until(lambda: len(rx.at("/hook")) == 1, timeout=20, what="the held send")
            runs = len(rx.at("/target"))
            await until(lambda: len(rx.at("/target")) >= runs + 3, timeout=20, what="runs to go on")
            assert len(rx.at("/hook")) == 1  # still held: nothing waited for it
            rx.release.set()


async def _all(engine: AsyncEngine, state: str) -> bool:
    found = await outbox_rows(engine)
    return bool(found) and all(r["state"] == state for r in found)


async def _channel_ok(engine: AsyncEngine, channel: str) -> bool:
    return (await channel_row(engine, channel))["failing"] is False


def test_backoff_doubles_up_to_an_hour() -> None:
    from notify.notify_support import config

    cfg = config(retry_base_s=30)
    assert [cfg.retry_in(n).total_seconds() for n in (1, 2, 3)] == [30, 60, 120]
    assert cfg.retry_in(50).total_seconds() == 3600
