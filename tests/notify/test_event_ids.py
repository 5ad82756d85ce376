"""At least once, deduplicable: every message carries its events' stable outbox ids
(`X-Cronicorn-Event-Id`), on JSON webhooks and on e-mail, and a redelivery after a crash
between send and acknowledge (the row is still pending) carries the same id."""

from __future__ import annotations

import re

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.tables import notify_outbox
from notify.notify_support import add_channel, delivering, outbox_rows
from notify.receivers import http_receiver, smtp_server
from scheduler.conftest import Rows
from support import until


async def one_event(engine: AsyncEngine, rows: Rows, channel: str) -> int:
    async with engine.begin() as conn:
        return int(
            await conn.scalar(
                insert(notify_outbox)
                .values(
                    channel_id=channel,
                    user_id=rows.user_id,
                    event="failure",
                    dedup_key=f"ids-{channel}",
                    payload={"event": "failure", "endpointName": "ep", "jobName": "j"},
                )
                .returning(notify_outbox.c.id)
            )
        )


async def crash_before_acknowledge(engine: AsyncEngine) -> None:
    """What a process killed after the receiver accepted, before it recorded the outcome,
    leaves behind: the row still pending (its lease then expires)."""
    async with engine.begin() as conn:
        await conn.execute(update(notify_outbox).values(state="pending", sent_at=None))


async def sent(engine: AsyncEngine) -> bool:
    return all(r["state"] == "sent" for r in await outbox_rows(engine))


async def test_webhook_redelivery_carries_the_same_event_id(
    engine: AsyncEngine, rows: Rows
) -> None:
    async with http_receiver() as rx:
        channel = await add_channel(engine, rows.user_id, f"json://{rx.base[7:]}/hook")
        event_id = await one_event(engine, rows, channel)
        for attempt in (1, 2):
            async with delivering(engine):
                await until(lambda n=attempt: len(rx.hits) == n, timeout=20, what="a send")
                await until(lambda: sent(engine), timeout=20, what="the send recorded")
            await crash_before_acknowledge(engine)
        first, second = rx.hits
        assert first.headers["x-cronicorn-event-id"] == str(event_id)
        assert second.headers["x-cronicorn-event-id"] == str(event_id)
        assert first.json["events"][0]["id"] == second.json["events"][0]["id"] == event_id


async def test_email_redelivery_carries_the_same_event_id(engine: AsyncEngine, rows: Rows) -> None:
    with smtp_server() as (port, box):
        url = f"mailto://ops:pw@127.0.0.1:{port}?to=ops@example.com&from=cron@example.com"
        channel = await add_channel(engine, rows.user_id, url)
        event_id = await one_event(engine, rows, channel)
        for attempt in (1, 2):
            async with delivering(engine):
                await until(lambda n=attempt: len(box.messages) == n, timeout=20, what="a mail")
                await until(lambda: sent(engine), timeout=20, what="the send recorded")
            await crash_before_acknowledge(engine)
        found = [
            re.findall(r"^X-Cronicorn-Event-Id: (\S+)\s*$", m["data"], re.MULTILINE)
            for m in box.messages
        ]
        assert found == [[str(event_id)], [str(event_id)]]
