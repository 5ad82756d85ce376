"""Jobs: the user's containers of endpoints. Every query is scoped by `user_id`.

Status transitions are guarded here (reference defect 16): an archived job is terminal, so
pausing or resuming it is a `Conflict`, not a silent change back to `active`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import RowMapping, Select, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.ids import new_id
from cronicorn.store.errors import Conflict, NotFound
from cronicorn.store.json_sql import JsonField, json_object
from cronicorn.store.read_pool import ReadPool, ReadStatement, compiled
from cronicorn.store.tables import endpoints, jobs

JobStatus = Literal["active", "paused", "archived"]


@dataclass(frozen=True)
class JobRow:
    id: str
    user_id: str
    name: str
    description: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    ai_mode: str = "auto"  # the AI planner's default for its endpoints: off | suggest | auto


def _job(m: RowMapping) -> JobRow:
    return JobRow(
        id=m["id"],
        user_id=m["user_id"],
        name=m["name"],
        description=m["description"],
        status=m["status"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        archived_at=m["archived_at"],
        ai_mode=m["ai_mode"],
    )


async def create(
    conn: AsyncConnection,
    user_id: str,
    *,
    name: str,
    description: str | None,
    now: datetime,
    ai_mode: str = "auto",
) -> JobRow:
    row = (
        await conn.execute(
            insert(jobs)
            .values(
                id=new_id(),
                user_id=user_id,
                name=name,
                description=description,
                status="active",
                ai_mode=ai_mode,
                created_at=now,
                updated_at=now,
            )
            .returning(jobs)
        )
    ).one()
    return _job(row._mapping)


async def get(
    conn: AsyncConnection,
    user_id: str,
    job_id: str,
    *,
    for_update: bool = False,
    for_share: bool = False,
) -> JobRow:
    """The caller's job, or `NotFound` (also when another user owns it). `for_share` keeps
    its status from changing until commit while letting other readers (e.g. concurrent
    endpoint creates) through; `for_update` is exclusive."""
    query = select(jobs).where(jobs.c.id == job_id, jobs.c.user_id == user_id)
    if for_update:
        query = query.with_for_update()
    elif for_share:
        query = query.with_for_update(read=True)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound("Job")
    return _job(row._mapping)


def _list_with_counts(by_status: bool) -> Select[Any]:
    counts = (
        select(endpoints.c.job_id, func.count().label("n"))
        .where(endpoints.c.user_id == bindparam("user_id"))
        .group_by(endpoints.c.job_id)
        .subquery()
    )
    query = (
        select(jobs, func.coalesce(counts.c.n, 0).label("endpoint_count"))
        .outerjoin(counts, counts.c.job_id == jobs.c.id)
        .where(jobs.c.user_id == bindparam("user_id"))
        .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
    )
    return query.where(jobs.c.status == bindparam("status")) if by_status else query


# Built once: SQLAlchemy memoizes a statement's cache key on the statement object, so the
# hot list route neither rebuilds nor re-keys it on every call (~9 % of the route's CPU).
_LIST_WITH_COUNTS = {False: _list_with_counts(False), True: _list_with_counts(True)}


async def list_with_counts(
    conn: AsyncConnection, user_id: str, status: JobStatus | None = None
) -> list[tuple[JobRow, int]]:
    """The caller's jobs, newest first, each with its endpoint count (archived ones included,
    as the reference counts them)."""
    params: dict[str, Any] = {"user_id": user_id}
    if status is not None:
        params["status"] = status
    rows = (await conn.execute(_LIST_WITH_COUNTS[status is not None], params)).all()
    return [(_job(r._mapping), int(r._mapping["endpoint_count"])) for r in rows]


async def list_json(
    pool: ReadPool, user_id: str, status: JobStatus | None, fields: tuple[JsonField, ...]
) -> list[str]:
    """`list_with_counts` as one JSON object per job (`store.json_sql`: the API's
    `GET /api/jobs`), `fields` naming `JobRow`'s columns and `endpoint_count`."""
    rows = await pool.fetch(_listed_json(status is not None, fields), _list_params(user_id, status))
    return [row[0] for row in rows]


@functools.cache
def _listed_json(by_status: bool, fields: tuple[JsonField, ...]) -> ReadStatement:
    stmt = _LIST_WITH_COUNTS[by_status]
    return compiled(stmt.with_only_columns(json_object(fields, stmt.selected_columns.__getitem__)))


def _list_params(user_id: str, status: JobStatus | None) -> dict[str, Any]:
    params: dict[str, Any] = {"user_id": user_id}
    if status is not None:
        params["status"] = status
    return params


async def update_fields(
    conn: AsyncConnection, user_id: str, job_id: str, changes: dict[str, Any], now: datetime
) -> JobRow:
    """Write `name`/`description`/`ai_mode` (one statement, so concurrent edits never mix)."""
    allowed = {k: v for k, v in changes.items() if k in {"name", "description", "ai_mode"}}
    row = (
        await conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.user_id == user_id)
            .values(**allowed, updated_at=now)
            .returning(jobs)
        )
    ).first()
    if row is None:
        raise NotFound("Job")
    return _job(row._mapping)


async def transition(
    conn: AsyncConnection, user_id: str, job_id: str, target: JobStatus, now: datetime
) -> tuple[JobRow, JobRow]:
    """Move a job to `target`; returns (before, after). Repeating a transition is a no-op;
    leaving `archived` is a `Conflict`."""
    before = await get(conn, user_id, job_id, for_update=True)
    if before.status == target:
        return before, before
    if before.status == "archived":
        raise Conflict(f"Job is archived; an archived job cannot be {_verb(target)}")
    values: dict[str, Any] = {"status": target, "updated_at": now}
    if target == "archived":
        values["archived_at"] = now
    row = (
        await conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.user_id == user_id)
            .values(**values)
            .returning(jobs)
        )
    ).one()
    return before, _job(row._mapping)


def _verb(target: JobStatus) -> str:
    return {"active": "resumed", "paused": "paused", "archived": "archived"}[target]


async def find_by_name(conn: AsyncConnection, user_id: str, name: str) -> JobRow | None:
    """The caller's newest non-archived job with this name (import matches jobs by name)."""
    row = (
        await conn.execute(
            select(jobs)
            .where(jobs.c.user_id == user_id, jobs.c.name == name, jobs.c.status != "archived")
            .order_by(jobs.c.created_at.desc())
            .limit(1)
        )
    ).first()
    return _job(row._mapping) if row is not None else None
