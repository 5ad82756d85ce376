"""Device authorization codes (RFC 8628). The device code is stored as a hash; the short user
code is stored as typed on the approval page (upper case, `XXXX-XXXX`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.ids import new_id
from cronicorn.store.tables import device_codes


@dataclass(frozen=True)
class DeviceCodeRow:
    id: str
    user_code: str
    client_id: str
    scope: str | None
    status: str
    user_id: str | None
    interval_s: int
    last_polled_at: datetime | None
    created_at: datetime
    expires_at: datetime


def _row(m: RowMapping) -> DeviceCodeRow:
    return DeviceCodeRow(
        id=m["id"],
        user_code=m["user_code"],
        client_id=m["client_id"],
        scope=m["scope"],
        status=m["status"],
        user_id=m["user_id"],
        interval_s=m["interval_s"],
        last_polled_at=m["last_polled_at"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
    )


async def create(
    conn: AsyncConnection,
    *,
    device_code_hash: str,
    user_code: str,
    client_id: str,
    scope: str | None,
    interval_s: int,
    now: datetime,
    expires_at: datetime,
) -> DeviceCodeRow:
    row = (
        await conn.execute(
            insert(device_codes)
            .values(
                id=new_id(),
                device_code_hash=device_code_hash,
                user_code=user_code,
                client_id=client_id,
                scope=scope,
                interval_s=interval_s,
                created_at=now,
                expires_at=expires_at,
            )
            .returning(device_codes)
        )
    ).one()
    return _row(row._mapping)


async def lock_by_device_code(conn: AsyncConnection, device_code_hash: str) -> DeviceCodeRow | None:
    """The row for a polling client, locked so concurrent polls are decided one at a time."""
    stmt = (
        select(device_codes)
        .where(device_codes.c.device_code_hash == device_code_hash)
        .with_for_update()
    )
    row = (await conn.execute(stmt)).first()
    return _row(row._mapping) if row is not None else None


async def by_user_code(conn: AsyncConnection, user_code: str) -> DeviceCodeRow | None:
    stmt = select(device_codes).where(device_codes.c.user_code == user_code)
    row = (await conn.execute(stmt)).first()
    return _row(row._mapping) if row is not None else None


async def record_poll(conn: AsyncConnection, code_id: str, now: datetime, interval_s: int) -> None:
    await conn.execute(
        update(device_codes)
        .where(device_codes.c.id == code_id)
        .values(last_polled_at=now, interval_s=interval_s)
    )


async def decide(
    conn: AsyncConnection, user_code: str, *, user_id: str, status: str, now: datetime
) -> DeviceCodeRow | None:
    """Approve or deny a pending, unexpired code; None if there is no such code."""
    row = (
        await conn.execute(
            update(device_codes)
            .where(
                device_codes.c.user_code == user_code,
                device_codes.c.status == "pending",
                device_codes.c.expires_at > now,
            )
            .values(status=status, user_id=user_id)
            .returning(device_codes)
        )
    ).first()
    return _row(row._mapping) if row is not None else None


async def consume(conn: AsyncConnection, code_id: str) -> bool:
    """Mark an approved code used; False if it was not approved (or already used)."""
    result = await conn.execute(
        update(device_codes)
        .where(device_codes.c.id == code_id, device_codes.c.status == "approved")
        .values(status="consumed")
        .returning(device_codes.c.id)
    )
    return result.first() is not None
