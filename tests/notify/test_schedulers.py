"""Three real `cronicorn scheduler` processes deliver one outbox: one is SIGKILLed while a
send of its is held open by the receiver; its channel's events are sent again by another
process once the lease expires, and every event is acknowledged exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.tables import channels
from notify.notify_support import SECRET, add_channel, outbox_rows
from notify.receivers import http_receiver
from notify.test_delivery import enqueue
from scheduler.conftest import Rows
from support import cli_env, start_cli, until

pytestmark = pytest.mark.slow

CHANNELS = 6
EVENTS_EACH = 4


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


async def test_every_event_is_acknowledged_once_across_a_sigkill(
    rows: Rows,
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    processes: list[subprocess.Popen[str]],
) -> None:
    async with http_receiver() as rx:
        rx.hold_first = True
        ids = [
            await add_channel(engine, rows.user_id, f"json://{rx.base[7:]}/c{i}", f"c{i}")
            for i in range(CHANNELS)
        ]
        for i, channel in enumerate(ids):
            await enqueue(engine, rows, channel, EVENTS_EACH, tag=f"c{i}")
        env = cli_env(
            DATABASE_URL=database_url,
            CRONICORN_HOME=str(tmp_path),
            AUTH_SECRET=SECRET,
            CRONICORN_ALLOW_NETWORKS="127.0.0.0/8",
            SHUTDOWN_TIMEOUT_S="5",
            NOTIFY_POLL_S="0.1",
            NOTIFY_CHANNEL_GAP_S="0",
            NOTIFY_TIMEOUT_S="2",  # lease: 3 x 2 + 5 = 11 s
            # One send at a time per process: when its held send is killed, every earlier
            # send of the victim was acknowledged AND recorded (a kill between the two is
            # the at-least-once window that event ids let receivers close).
            NOTIFY_CONCURRENCY="1",
        )
        processes += [start_cli("scheduler", env=env) for _ in range(3)]
        await until(lambda: len(rx.hits) >= 1, timeout=90, what="the first (held) send")
        held = rx.hits[0].path
        async with engine.connect() as conn:
            owner = await conn.scalar(
                select(channels.c.lease_owner).where(channels.c.id == ids[int(held[2:])])
            )
        assert owner is not None, "the held send's channel is leased by its sender"
        pid = int(owner.split(":")[1])
        victim = next(p for p in processes if p.pid == pid)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        rx.release.set()

        async def all_sent() -> bool:
            found = await outbox_rows(engine)
            return len(found) == CHANNELS * EVENTS_EACH and all(r["state"] == "sent" for r in found)

        await until(all_sent, timeout=90, what="every event to be sent")
        acked = Counter(e["id"] for h in rx.hits if h.acked for e in h.json["events"])
        assert len(acked) == CHANNELS * EVENTS_EACH
        assert set(acked.values()) == {1}, [
            (h.path, h.acked, round(h.started, 2), [e["id"] for e in h.json["events"]])
            for h in rx.hits
        ]
        held_ids = {e["id"] for e in rx.hits[0].json["events"]}
        assert held_ids <= set(acked)  # the killed sender's events went out again
