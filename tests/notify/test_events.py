"""Run events end to end: a real scheduler calls a failing endpoint, its batch write puts
the events in the outbox, the delivery loop sends them to a real webhook receiver."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.signing import verify
from notify.notify_support import add_channel, delivering, outbox_rows, subscribe
from notify.receivers import Receiver, http_receiver
from scheduler.conftest import Rows, running_scheduler
from support import until


def events(receiver: Receiver, path: str = "/hook") -> list[dict[str, Any]]:
    return [e for h in receiver.at(path) for e in h.json["events"]]


async def test_failure_then_recovery_each_sent_once(
    database_url: str, engine: AsyncEngine, rows: Rows
) -> None:
    async with http_receiver() as rx:
        rx.status["/target"] = 500
        endpoint = await rows.endpoint(
            f"{rx.base}/target", baseline_interval_ms=500, max_interval_ms=500
        )
        channel = await add_channel(engine, rows.user_id, f"json://{rx.base[7:]}/hook")
        await subscribe(engine, rows.job_id, channels=[channel], onFailureAfter=2)
        async with running_scheduler(database_url, engine), delivering(engine):
            await until(lambda: len(events(rx)) >= 1, timeout=20, what="the failure event")
            await until(lambda: len(rx.at("/target")) >= 4, timeout=20, what="more failures")
            rx.status["/target"] = 200
            await until(lambda: len(events(rx)) >= 2, timeout=20, what="the recovery event")
            good = len(rx.at("/target"))
            await until(lambda: len(rx.at("/target")) >= good + 2, timeout=20, what="more runs")
        sent = events(rx)
        assert [e["event"] for e in sent] == ["failure", "recovery"]
        failure, recovery = sent
        assert failure["endpointId"] == endpoint
        assert failure["failures"] == 2
        assert failure["error"]
        assert failure["since"]
        assert failure["runId"]
        assert recovery["failures"] >= 2
        assert recovery["status"] == "success"
        body = rx.at("/hook")[0]
        assert body.json["title"].startswith("Failing: ")
        assert f"http://dash.example/endpoints/{endpoint}/runs/" in body.json["body"]
        assert all(r["state"] == "sent" for r in await outbox_rows(engine))


async def test_webhooks_are_signed_with_the_users_key(
    database_url: str, engine: AsyncEngine, rows: Rows
) -> None:
    from cronicorn.dispatch.signing import encrypt_signing_key, generate_signing_key
    from cronicorn.store import signing_keys
    from notify.notify_support import SECRET

    raw, shown, prefix = generate_signing_key()
    async with engine.begin() as conn:
        from datetime import UTC, datetime

        await signing_keys.create(
            conn,
            rows.user_id,
            encrypted=encrypt_signing_key(raw, SECRET),
            prefix=prefix,
            now=datetime.now(UTC),
        )
    async with http_receiver() as rx:
        rx.status["/target"] = 500
        await rows.endpoint(f"{rx.base}/target", baseline_interval_ms=500)
        channel = await add_channel(engine, rows.user_id, f"json://{rx.base[7:]}/hook")
        await subscribe(engine, rows.job_id, channels=[channel])
        async with running_scheduler(database_url, engine), delivering(engine):
            await until(lambda: len(rx.at("/hook")) >= 1, timeout=20, what="a notification")
        hit = rx.at("/hook")[0]
        assert verify(
            shown,
            hit.headers.get("x-cronicorn-timestamp"),
            hit.body,
            hit.headers.get("x-cronicorn-signature"),
        )


async def test_malformed_settings_fall_back_to_defaults_and_never_stop_runs(
    database_url: str, engine: AsyncEngine, rows: Rows
) -> None:
    async with http_receiver() as rx:
        rx.status["/target"] = 500
        await rows.endpoint(f"{rx.base}/target", baseline_interval_ms=500, max_interval_ms=500)
        channel = await add_channel(engine, rows.user_id, f"json://{rx.base[7:]}/hook")
        # written by hand, past the API's validation
        await subscribe(engine, rows.job_id, channels=[channel, 7], onFailureAfter="two")
        async with running_scheduler(database_url, engine), delivering(engine):
            await until(lambda: len(events(rx)) >= 1, timeout=20, what="the failure event")
            await until(lambda: len(rx.at("/target")) >= 3, timeout=20, what="runs going on")
        assert events(rx)[0]["failures"] == 1  # the default threshold
