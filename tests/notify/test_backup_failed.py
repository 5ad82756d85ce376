"""A failing scheduled backup tells the admins who subscribed (account-level `backup_failed`)
through the outbox, exactly once per slot however many processes handle it, and nobody
else: a non-admin's subscription row (a demoted admin's, say) is ignored."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.backup.context import BackupContext
from cronicorn.backup.retention import Policy
from cronicorn.backup.scheduled import ScheduleConfig, handle_slot
from cronicorn.notify.service import subscribe_account
from cronicorn.schemas.notify import AccountNotifyBody
from cronicorn.store.tables import settings, users
from notify.notify_support import add_channel, delivering, outbox_rows
from notify.receivers import http_receiver
from scheduler.conftest import Rows
from support import until


async def test_a_failed_scheduled_backup_notifies_subscribed_admins_once(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    rows = Rows(engine)
    admin, member = await rows.user(), await rows.user()
    async with engine.begin() as conn:
        await conn.execute(users.update().where(users.c.id == admin).values(is_admin=True))
    # The slot: an hour ago, and every clock of the backup reads it (names, the event).
    slot = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    not_a_dir = tmp_path / "backups"
    not_a_dir.write_text("a file where the backup directory should be")
    ctx = BackupContext(
        database_url=database_url, backup_dir=not_a_dir, clock=lambda: slot + timedelta(seconds=5)
    )
    cfg = ScheduleConfig(
        schedule="0 * * * *",
        verify=False,
        policy=Policy(daily=7, weekly=0, monthly=0),
        target=None,
        config_dir=tmp_path / "no-config-here",
    )
    async with http_receiver() as rx:
        mine = await add_channel(engine, admin, f"json://{rx.base[7:]}/admin")
        theirs = await add_channel(engine, member, f"json://{rx.base[7:]}/member")
        async with engine.begin() as conn:
            body = AccountNotifyBody.model_validate({"notify": {"channels": [mine]}})
            await subscribe_account(conn, admin, body, now=slot)
            await conn.execute(
                insert(settings).values(
                    key=f"account_notify:{member}",
                    value={"channels": [theirs], "events": ["backup_failed"]},
                )
            )
        stop = asyncio.Event()
        outcomes = await asyncio.gather(
            *(handle_slot(engine, ctx, cfg, slot, stop) for _ in range(2))  # two processes
        )
        assert sorted(o.status for o in outcomes) == ["failed", "skipped"]
        assert len(await outbox_rows(engine)) == 1
        async with delivering(engine):
            await until(lambda: len(rx.at("/admin")) == 1, timeout=20, what="the admin's alert")
            await until(lambda: _all_sent(engine), timeout=20, what="the send recorded")
        assert rx.at("/member") == []
        [hit] = rx.at("/admin")
        [event] = hit.json["events"]
        assert event["event"] == "backup_failed"
        assert event["slot"] == slot.isoformat()
        assert "backups" in event["error"]
        assert hit.json["title"] == "Scheduled backup failed: Cronicorn"
        assert hit.json["body"].endswith("http://dash.example/admin/backups")
        assert hit.headers["x-cronicorn-event-id"] == str(event["id"])
        stop.set()  # a slot that fails while the process shuts down pages nobody
        later = await handle_slot(engine, ctx, cfg, slot + timedelta(hours=1), stop)
        assert later.status == "failed"
        assert len(await outbox_rows(engine)) == 1


async def _all_sent(engine: AsyncEngine) -> bool:
    return all(r["state"] == "sent" for r in await outbox_rows(engine))
