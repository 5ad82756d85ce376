"""Reading run history (the scheduler writes runs; the API records only manual test runs).

Every query is scoped by the runs' own `user_id` column as well as the endpoint's, so another
user's endpoint id is a 404 rather than an empty list (reference §2.7 returned 200-empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, and_, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.ids import new_id
from cronicorn.store.errors import NotFound
from cronicorn.store.tables import endpoints, runs

RUN_STATUSES = ("running", "success", "failed")


@dataclass(frozen=True)
class RunSummary:
    id: str
    endpoint_id: str
    status: str
    source: str
    attempt: int
    due_at: datetime | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    status_code: int | None
    error_message: str | None


@dataclass(frozen=True)
class RunDetail(RunSummary):
    response_body: Any
    response_text: str | None
    response_size: int | None
    response_truncated: bool
    worker: str | None
    endpoint_name: str
    endpoint_url: str
    endpoint_method: str


_SUMMARY_COLUMNS = (
    runs.c.id,
    runs.c.endpoint_id,
    runs.c.status,
    runs.c.source,
    runs.c.attempt,
    runs.c.due_at,
    runs.c.started_at,
    runs.c.finished_at,
    runs.c.duration_ms,
    runs.c.status_code,
    runs.c.error_message,
)


def _summary(m: RowMapping) -> RunSummary:
    return RunSummary(**{c.name: m[c.name] for c in _SUMMARY_COLUMNS})


async def _require_endpoint(conn: AsyncConnection, user_id: str, endpoint_id: str) -> None:
    found = await conn.scalar(
        select(endpoints.c.id).where(endpoints.c.id == endpoint_id, endpoints.c.user_id == user_id)
    )
    if found is None:
        raise NotFound("Endpoint")


async def list_for_endpoint(
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    *,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[RunSummary], int]:
    """A page of the endpoint's runs, newest first, and the total matching the filters."""
    await _require_endpoint(conn, user_id, endpoint_id)
    conditions = [runs.c.endpoint_id == endpoint_id, runs.c.user_id == user_id]
    if status is not None:
        conditions.append(runs.c.status == status)
    if since is not None:
        conditions.append(runs.c.started_at >= since)
    if until is not None:
        conditions.append(runs.c.started_at < until)
    where = and_(*conditions)
    page = await conn.execute(
        select(*_SUMMARY_COLUMNS)
        .where(where)
        .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = await conn.scalar(select(func.count()).select_from(runs).where(where))
    return [_summary(r._mapping) for r in page], int(total or 0)


async def get_detail(conn: AsyncConnection, user_id: str, run_id: str) -> RunDetail:
    row = (
        await conn.execute(
            select(
                *_SUMMARY_COLUMNS,
                runs.c.response_body,
                runs.c.response_text,
                runs.c.response_size,
                runs.c.response_truncated,
                runs.c.worker,
                endpoints.c.name.label("endpoint_name"),
                endpoints.c.url.label("endpoint_url"),
                endpoints.c.method.label("endpoint_method"),
            )
            .join(endpoints, endpoints.c.id == runs.c.endpoint_id)
            .where(runs.c.id == run_id, runs.c.user_id == user_id)
        )
    ).first()
    if row is None:
        raise NotFound("Run")
    m = row._mapping
    return RunDetail(**{key: m[key] for key in m.keys()})  # noqa: SIM118 - RowMapping


@dataclass(frozen=True)
class HealthSummary:
    success_count: int
    failure_count: int
    avg_duration_ms: float | None
    last_status: str | None
    last_at: datetime | None
    failure_streak: int


async def health(
    conn: AsyncConnection, user_id: str, endpoint_id: str, since: datetime
) -> HealthSummary:
    """Counts over the window, the latest run, and the current streak of failed runs
    (failures since the last success, whatever the window)."""
    await _require_endpoint(conn, user_id, endpoint_id)
    mine = and_(runs.c.endpoint_id == endpoint_id, runs.c.user_id == user_id)
    counts = (
        await conn.execute(
            select(
                func.count().filter(runs.c.status == "success"),
                func.count().filter(runs.c.status == "failed"),
                func.avg(runs.c.duration_ms).filter(runs.c.status != "running"),
            ).where(mine, runs.c.started_at >= since)
        )
    ).one()
    last = (
        await conn.execute(
            select(runs.c.status, runs.c.started_at)
            .where(mine)
            .order_by(runs.c.started_at.desc(), runs.c.id.desc())
            .limit(1)
        )
    ).first()
    last_success = (
        select(func.max(runs.c.started_at)).where(mine, runs.c.status == "success")
    ).scalar_subquery()
    streak = await conn.scalar(
        select(func.count()).where(
            mine,
            runs.c.status == "failed",
            or_(last_success.is_(None), runs.c.started_at > last_success),
        )
    )
    return HealthSummary(
        success_count=int(counts[0]),
        failure_count=int(counts[1]),
        avg_duration_ms=float(counts[2]) if counts[2] is not None else None,
        last_status=last[0] if last is not None else None,
        last_at=last[1] if last is not None else None,
        failure_streak=int(streak or 0),
    )


async def record_test_run(
    conn: AsyncConnection,
    *,
    user_id: str,
    endpoint_id: str,
    started_at: datetime,
    finished_at: datetime,
    outcome: dict[str, Any],
    worker: str = "api",
) -> str:
    """Store a finished manual run (`source='test'`, no due slot, attempt 1). `outcome` holds
    the result columns: status, duration_ms, status_code, response_body, response_text,
    response_size, response_truncated, error_message."""
    run_id = new_id()
    await conn.execute(
        insert(runs).values(
            id=run_id,
            endpoint_id=endpoint_id,
            user_id=user_id,
            source="test",
            attempt=1,
            due_at=None,
            started_at=started_at,
            finished_at=finished_at,
            worker=worker,
            **outcome,
        )
    )
    return run_id
