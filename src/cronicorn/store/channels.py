"""Notification channels: one Apprise URL each, stored encrypted (callers pass ciphertext in
and get it out only through `secret_of`), scoped to their user (another user's channel is
`NotFound`), with the delivery state the sender keeps beside them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.ids import new_id
from cronicorn.store.errors import Conflict, NotFound
from cronicorn.store.tables import channels, endpoints, jobs, settings

_PUBLIC = (
    channels.c.id,
    channels.c.user_id,
    channels.c.name,
    channels.c.kind,
    channels.c.url_preview,
    channels.c.created_at,
    channels.c.updated_at,
    channels.c.failing,
    channels.c.consecutive_failures,
    channels.c.last_success_at,
    channels.c.last_error_at,
    channels.c.last_error,
)


@dataclass(frozen=True)
class Channel:
    """A channel as shown to its owner: never the URL, only Apprise's privacy preview."""

    id: str
    user_id: str
    name: str
    kind: str
    url_preview: str
    created_at: datetime
    updated_at: datetime
    failing: bool
    consecutive_failures: int
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None


def _duplicate(name: str) -> Conflict:
    return Conflict(f"A channel named {name!r} already exists")


async def create(
    conn: AsyncConnection,
    user_id: str,
    *,
    name: str,
    kind: str,
    encrypted: bytes,
    preview: str,
    now: datetime,
) -> Channel:
    channel_id = new_id()
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(channels).values(
                    id=channel_id,
                    user_id=user_id,
                    name=name,
                    kind=kind,
                    url_encrypted=encrypted,
                    url_preview=preview,
                    created_at=now,
                    updated_at=now,
                    next_send_at=now,
                )
            )
    except IntegrityError:
        raise _duplicate(name) from None
    return await get(conn, user_id, channel_id)


async def list_for(conn: AsyncConnection, user_id: str) -> list[Channel]:
    rows = await conn.execute(
        select(*_PUBLIC)
        .where(channels.c.user_id == user_id)
        .order_by(func.lower(channels.c.name), channels.c.id)
    )
    return [Channel(**r._mapping) for r in rows]


async def get(conn: AsyncConnection, user_id: str, channel_id: str) -> Channel:
    row = (
        await conn.execute(
            select(*_PUBLIC).where(channels.c.id == channel_id, channels.c.user_id == user_id)
        )
    ).first()
    if row is None:
        raise NotFound("Channel")
    return Channel(**row._mapping)


async def secret_of(conn: AsyncConnection, user_id: str, channel_id: str) -> bytes:
    """The encrypted URL (for a test send); `NotFound` for another user's channel."""
    blob = await conn.scalar(
        select(channels.c.url_encrypted).where(
            channels.c.id == channel_id, channels.c.user_id == user_id
        )
    )
    if blob is None:
        raise NotFound("Channel")
    return bytes(blob)


async def update_channel(
    conn: AsyncConnection,
    user_id: str,
    channel_id: str,
    *,
    now: datetime,
    name: str | None = None,
    kind: str | None = None,
    encrypted: bytes | None = None,
    preview: str | None = None,
) -> Channel:
    """Rename and/or replace the URL (a new URL clears the failing state: it is a new
    destination)."""
    values: dict[str, Any] = {"updated_at": now}
    if name is not None:
        values["name"] = name
    if encrypted is not None and kind is not None and preview is not None:
        values.update(
            url_encrypted=encrypted,
            kind=kind,
            url_preview=preview,
            failing=False,
            consecutive_failures=0,
        )
    try:
        async with conn.begin_nested():
            result = await conn.execute(
                update(channels)
                .where(channels.c.id == channel_id, channels.c.user_id == user_id)
                .values(**values)
            )
    except IntegrityError:
        raise _duplicate(name or "") from None
    if result.rowcount == 0:
        raise NotFound("Channel")
    return await get(conn, user_id, channel_id)


async def delete_channel(conn: AsyncConnection, user_id: str, channel_id: str) -> None:
    """Its pending notifications and history go with it (cascade)."""
    result = await conn.execute(
        delete(channels).where(channels.c.id == channel_id, channels.c.user_id == user_id)
    )
    if result.rowcount == 0:
        raise NotFound("Channel")


async def owned_ids(conn: AsyncConnection, user_id: str, ids: list[str]) -> set[str]:
    """Which of `ids` are the user's channels (subscriptions may only name one's own)."""
    if not ids:
        return set()
    rows = await conn.execute(
        select(channels.c.id).where(channels.c.user_id == user_id, channels.c.id.in_(ids))
    )
    return {r[0] for r in rows}


# -- account-level subscriptions ---------------------------------------------------------
# Events not tied to a job (a scheduled backup failed) are subscribed per account: one
# `settings` row per user, key `account_notify:<user id>`, value {"channels": [ids],
# "events": [...]}. Who may hear them is decided when an event is written
# (`store.outbox.enqueue_admin_event`: admins only), so a demoted admin hears nothing more.

ACCOUNT_KEY = "account_notify:"

AUDIT_ACCOUNT_SQL = text(
    """
    INSERT INTO audit_log (user_id, actor_kind, actor_id, actor_name, action, entity,
                           entity_id, changes, request_id)
    SELECT :user_id, coalesce(a ->> 'kind', 'system'), a ->> 'id', a ->> 'name', 'update',
           'user', :user_id,
           jsonb_build_object('account_notify', jsonb_build_object(
               'from', CAST(:before AS jsonb), 'to', CAST(:after AS jsonb))),
           nullif(current_setting('cronicorn.request_id', true), '')
    FROM (SELECT cronicorn_actor() AS a) actor
    """
)


async def account_notify(conn: AsyncConnection, user_id: str) -> dict[str, Any] | None:
    value = await conn.scalar(
        select(settings.c.value).where(settings.c.key == ACCOUNT_KEY + user_id)
    )
    return dict(value) if isinstance(value, dict) else None


async def set_account_notify(
    conn: AsyncConnection, user_id: str, value: dict[str, Any] | None, now: datetime
) -> None:
    """Store (None: remove) the user's account-level subscription. The `settings` table has
    no audit trigger, so the change is recorded here, with the same actor the triggers use
    (`cronicorn_actor()`)."""
    key = ACCOUNT_KEY + user_id
    before = await account_notify(conn, user_id)
    if value is None:
        await conn.execute(delete(settings).where(settings.c.key == key))
    else:
        stmt = pg_insert(settings).values(key=key, value=value, updated_at=now)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[settings.c.key], set_={"value": value, "updated_at": now}
            )
        )
    if before != value:
        await conn.execute(
            AUDIT_ACCOUNT_SQL,
            {
                "user_id": user_id,
                "before": json.dumps(before) if before is not None else None,
                "after": json.dumps(value) if value is not None else None,
            },
        )


# -- subscriptions (`notify` on jobs and endpoints) --------------------------------------


def _notify_table(kind: str) -> Table:
    return jobs if kind == "job" else endpoints


async def read_notify(conn: AsyncConnection, user_id: str, kind: str, key: str) -> Any:
    """A job's or endpoint's own `notify` JSON (None: unset); `NotFound` if not the user's."""
    table = _notify_table(kind)
    query = select(table.c.notify).where(table.c.id == key, table.c.user_id == user_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound("Job" if kind == "job" else "Endpoint")
    return row[0]


async def write_notify(
    conn: AsyncConnection, user_id: str, kind: str, key: str, value: Any, now: datetime
) -> None:
    """Set (None: clear) a job's or endpoint's `notify`; callers check the channel ids."""
    table = _notify_table(kind)
    result = await conn.execute(
        update(table)
        .where(table.c.id == key, table.c.user_id == user_id)
        .values(notify=value, updated_at=now)
    )
    if result.rowcount == 0:
        raise NotFound("Job" if kind == "job" else "Endpoint")


async def all_notify(conn: AsyncConnection, user_id: str) -> dict[str, Any]:
    """Every set `notify` of the user's jobs and endpoints, by job or endpoint id (export)."""
    found: dict[str, Any] = {}
    for table in (jobs, endpoints):
        rows = await conn.execute(
            select(table.c.id, table.c.notify).where(
                table.c.user_id == user_id, table.c.notify.is_not(None)
            )
        )
        found.update({r.id: r.notify for r in rows})
    return found
