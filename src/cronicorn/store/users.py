"""User rows: the few queries the foundation needs (the accounts API adds more)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.ids import new_id
from cronicorn.store.tables import users


@dataclass(frozen=True)
class UserRow:
    id: str
    email: str
    name: str
    is_admin: bool
    password_hash: str | None
    disabled_at: datetime | None
    created_at: datetime


async def get_by_email(conn: AsyncConnection, email: str) -> UserRow | None:
    row = (
        await conn.execute(select(users).where(func.lower(users.c.email) == email.lower()))
    ).first()
    return _user(row._mapping) if row is not None else None


async def count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


async def create(
    conn: AsyncConnection,
    *,
    email: str,
    name: str,
    password_hash: str | None,
    is_admin: bool = False,
) -> UserRow:
    row = (
        await conn.execute(
            insert(users)
            .values(
                id=new_id(),
                email=email,
                name=name,
                password_hash=password_hash,
                is_admin=is_admin,
            )
            .returning(users)
        )
    ).one()
    return _user(row._mapping)


def _user(m: RowMapping) -> UserRow:
    return UserRow(
        id=m["id"],
        email=m["email"],
        name=m["name"],
        is_admin=m["is_admin"],
        password_hash=m["password_hash"],
        disabled_at=m["disabled_at"],
        created_at=m["created_at"],
    )
