"""User rows. Emails are unique case-insensitively; `disabled_at` set means every session
and key of the user stops working at once (authentication joins on it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.ids import new_id
from cronicorn.store.credential_cache import announce
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
    github_id: str | None = None


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
        github_id=m["github_id"],
    )


async def get_by_id(conn: AsyncConnection, user_id: str) -> UserRow | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return _user(row._mapping) if row is not None else None


async def get_by_github_id(conn: AsyncConnection, github_id: str) -> UserRow | None:
    row = (await conn.execute(select(users).where(users.c.github_id == github_id))).first()
    return _user(row._mapping) if row is not None else None


async def list_all(conn: AsyncConnection) -> list[UserRow]:
    stmt = select(users).order_by(users.c.created_at, users.c.id)
    return [_user(row._mapping) for row in await conn.execute(stmt)]


async def set_disabled(
    conn: AsyncConnection, user_id: str, disabled_at: datetime | None, now: datetime
) -> UserRow | None:
    row = (
        await conn.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(disabled_at=disabled_at, updated_at=now)
            .returning(users)
        )
    ).first()
    await announce(conn)  # every API process drops its cached credentials at commit
    return _user(row._mapping) if row is not None else None


async def set_password_hash(
    conn: AsyncConnection, user_id: str, password_hash: str, now: datetime
) -> None:
    await conn.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(password_hash=password_hash, updated_at=now)
    )


async def link_github(conn: AsyncConnection, user_id: str, github_id: str, now: datetime) -> None:
    await conn.execute(
        update(users).where(users.c.id == user_id).values(github_id=github_id, updated_at=now)
    )
